"""Which server folders an API caller may make Viewfinder read.

Reading a server path on a caller's behalf is a file-read primitive, so it is off until
``VIEWFINDER_IMPORT_ROOTS`` names the folders that may be read. The CLI runs as the operator at the
console and is not limited.
"""

from __future__ import annotations

from pathlib import Path

from viewfinder.errors import InvalidInputError


def allowed_server_folder(path: str, allowed: list[Path]) -> Path:
    """``path`` resolved (symlinks and ``..`` followed), if it is a folder inside one of
    ``allowed``; otherwise ``InvalidInputError`` saying what to set or fix."""
    if not allowed:
        raise InvalidInputError(
            "reading server folders over the API is off: set VIEWFINDER_IMPORT_ROOTS to the "
            "server folders that may be read (or use the viewfinder CLI on the server)"
        )
    root = Path(path).expanduser().resolve()
    if not any(root.is_relative_to(base.expanduser().resolve()) for base in allowed):
        raise InvalidInputError(f"{path!r} is not inside VIEWFINDER_IMPORT_ROOTS")
    if not root.is_dir():
        raise InvalidInputError(f"{path!r} is not a folder on the server")
    return root
