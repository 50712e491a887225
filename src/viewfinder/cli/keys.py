"""``viewfinder keys``: create, list and revoke the API keys stored in the database."""

from __future__ import annotations

from typing import Annotated

import typer

from viewfinder.access.keys import KeyInfo, key_store_for
from viewfinder.cli.common import fail, load_settings
from viewfinder.errors import ViewfinderError

keys_app = typer.Typer(
    no_args_is_help=True,
    help="API keys: once one exists, every request but GET /health needs a key (docs/security.md).",
)


def _when(info: KeyInfo) -> str:
    return info.created_at.strftime("%Y-%m-%d %H:%M")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for (shown by `keys list`).")] = "api",
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Read and search only: writes get 403.")
    ] = False,
) -> None:
    """Create a key and print it. It is stored hashed: this is the only time it is shown."""
    try:
        with key_store_for(load_settings()) as store:
            info, key = store.create(name, read_only)
    except ViewfinderError as exc:
        raise fail(exc) from None
    access = "read-only" if info.read_only else "full access"
    typer.echo(
        f"created key {info.id} ({info.name}, {access}); keep it, it is not shown again:", err=True
    )
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """Every key: id, prefix, access, name, when created and last used, and whether revoked."""
    with key_store_for(load_settings()) as store:
        keys = store.list()
    if not keys:
        typer.echo("no keys: the API is open to anyone who reaches it (`viewfinder keys create`)")
        return
    typer.echo(
        f"{'id':>4}  {'prefix':12} {'access':10} {'created':16}  {'last used':16}  state  name"
    )
    for info in keys:
        used = info.last_used_at.strftime("%Y-%m-%d %H:%M") if info.last_used_at else "never"
        state = "revoked" if info.revoked_at else "active"
        access = "read-only" if info.read_only else "full"
        typer.echo(
            f"{info.id:>4}  {info.prefix + '…':12} {access:10} {_when(info):16}  {used:16}  "
            f"{state:8}{info.name}"
        )


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's id, or the start of its prefix.")],
) -> None:
    """Revoke a key: requests with it, and web sessions opened with it, are refused within
    VIEWFINDER_API_KEY_CACHE_S seconds (5 by default) on every server."""
    try:
        with key_store_for(load_settings()) as store:
            info = store.revoke(key)
    except ViewfinderError as exc:
        raise fail(exc) from None
    typer.echo(f"revoked key {info.id} ({info.prefix}…, {info.name})")
