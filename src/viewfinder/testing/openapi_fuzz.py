"""Fuzzing the app against its own OpenAPI document with schemathesis (a dev dependency).

Every operation in ``/openapi.json`` gets requests generated from its schema, valid ones
(``positive``) and invalid ones (``negative``), sent in-process to the ASGI app; each response is
checked: no 5xx, a documented status code, a documented content type, a body that matches the
documented schema. Used by ``tests/test_openapi_fuzz.py`` (a bounded run) and
``benchmarks/fuzz_api.py`` (the full run).
"""

from __future__ import annotations

import contextlib
import io
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
Case = schemathesis.Case[Any]
Operation = schemathesis.APIOperation[Any, Any, Any, Any]
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)


@dataclass(frozen=True)
class Finding:
    """One response that broke a check (or an exception the app raised instead of answering)."""

    operation: str
    mode: str
    status: int | None
    title: str
    message: str
    request: str

    def __str__(self) -> str:
        return (
            f"{self.operation} [{self.mode}] -> {self.status}: {self.title}\n"
            f"  {self.message.strip()[:600]}\n  request: {self.request[:600]}"
        )


@dataclass
class FuzzReport:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    per_operation: dict[str, Counter[int]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def never_succeeded(self) -> list[str]:
        """Operations no generated request got a 2xx from: their success bodies went unchecked."""
        return sorted(
            label
            for label, statuses in self.per_operation.items()
            if not any(200 <= status < 300 for status in statuses)
        )

    def summary(self) -> str:
        statuses = ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items()))
        return (
            f"{self.requests} requests over {len(self.per_operation)} operations in "
            f"{self.seconds:.1f} s; {self.server_errors} x 5xx; {len(self.findings)} failed checks"
            f"\nstatus codes: {statuses}"
            f"\nno 2xx from: {', '.join(self.never_succeeded()) or 'none'}"
        )


def _png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, "PNG")
    return out.getvalue()


@dataclass(frozen=True)
class Seeds:
    """What ``seed_library`` created: path parameter values that exist, by parameter name."""

    path_values: dict[str, list[Any]]


# Multipart fields that take files, and form fields whose value must be JSON: generated values
# are never an image or a tasks array, so half the valid cases get these instead.
FILE_FIELDS = frozenset({"files", "file", "image_file", "image"})
KNOWN_FORM_VALUES: dict[str, str] = {
    "tasks_json": '[{"operation_id": "emb", "type": "embed_clip_vit_b_32"}]',
}


def seed_library(app: Any) -> Seeds:
    """Three images, a collection holding two of them, a person and a job, so that requests
    can name things that exist. Sent through the ASGI client schemathesis uses, so the app's
    lifespan starts once."""
    with asgi.get_client(app) as client:

        def post(path: str, **kwargs: Any) -> Any:
            response = client.post(path, **kwargs)
            response.raise_for_status()
            return response.json()

        files = [
            ("files", (f"seed-{i}.png", _png(color), "image/png"))
            for i, color in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)])
        ]
        assets = [item["asset"]["id"] for item in post("/api/v1/assets", files=files)]
        collection = post("/api/v1/collections", json={"name": "seed"})["id"]
        post(f"/api/v1/collections/{collection}/assets", json={"asset_ids": assets[:2]})
        person = post("/api/v1/persons", json={"name": "Seed Person"})["id"]
        job = post("/api/v1/reindex", json={})["id"]
    return Seeds(
        {
            "asset_id": assets,
            "collection_id": [collection],
            "person_id": [person],
            "job_id": [job],
        }
    )


def _with_known_data(case: Case, chosen: dict[str, Any]) -> Case:
    """``case`` with existing ids in its path and, in a form, an image and valid JSON fields."""
    body: Any = case.body
    if case.media_type == "multipart/form-data" and isinstance(body, dict):
        image = _png((90, 120, 150))
        body = {
            name: ([image] if isinstance(value, list) else image)
            if name in FILE_FIELDS
            else KNOWN_FORM_VALUES.get(name, value)
            for name, value in body.items()
        }
    rebuilt: Case = case.operation.Case(
        path_parameters={**(case.path_parameters or {}), **chosen},
        headers=dict(case.headers or {}),
        query=case.query,
        body=body,
        media_type=case.media_type,
    )
    return rebuilt


def _strategy(
    operation: Operation, mode: schemathesis.GenerationMode, seeds: Seeds | None
) -> st.SearchStrategy[Case]:
    generated = operation.as_strategy(generation_mode=mode)
    if seeds is None or not mode.is_positive:
        return generated
    names = [p.name for p in operation.path_parameters if p.name in seeds.path_values]
    known = generated.flatmap(
        lambda case: st.fixed_dictionaries(
            {name: st.sampled_from(seeds.path_values[name]) for name in names}
        ).map(lambda chosen: _with_known_data(case, chosen))
    )
    return st.one_of(generated, known)


def _describe(case: Case) -> str:
    body = "" if case.body is NOT_SET else f" body={case.body!r}"
    return (
        f"{case.method} {case.formatted_path} query={case.query!r} headers={case.headers!r}"
        f" media_type={case.media_type!r}{body}"
    )


def _run_case(
    case: Case, label: str, mode: str, headers: dict[str, str] | None, report: FuzzReport
) -> None:
    report.requests += 1
    seen = report.per_operation.setdefault(label, Counter())
    try:
        response = case.call(headers=headers)
    except Exception as exc:  # noqa: BLE001 - an exception out of the app is what we look for
        report.statuses[500] += 1
        seen[500] += 1
        report.findings.append(
            Finding(label, mode, None, "unhandled exception", repr(exc), _describe(case))
        )
        return
    report.statuses[response.status_code] += 1
    seen[response.status_code] += 1
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
    except FailureGroup as group:
        report.findings.extend(
            Finding(label, mode, response.status_code, f.title, f.message, _describe(case))
            for f in group.exceptions
        )


def _fuzz_operation(
    operation: Operation,
    label: str,
    mode: schemathesis.GenerationMode,
    examples: int,
    seed: int,
    seeds: Seeds | None,
    headers: dict[str, str] | None,
    report: FuzzReport,
) -> None:
    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: every finding is kept as sent
        suppress_health_check=list(HealthCheck),
        verbosity=hypothesis.Verbosity.quiet,
    )
    @hypothesis.given(case=_strategy(operation, mode, seeds))
    def run(case: Case) -> None:
        _run_case(case, label, mode.value, headers, report)

    # Unsatisfiable: nothing in the operation to make invalid (no parameters, no body).
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        run()


def _destructive_last(schema: schemathesis.BaseSchema) -> list[Operation]:
    """Every operation, those that delete what the seeds created (DELETE, merge) last, so that
    the others still find it."""
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # a document schemathesis cannot read is itself a failure
        operations.append(result.ok())
    return sorted(
        operations, key=lambda op: op.method.upper() == "DELETE" or op.path.endswith("/merge")
    )


def fuzz_app(
    app: Any,
    *,
    examples: int,
    modes: Iterable[schemathesis.GenerationMode] = MODES,
    seed: int = 0,
    seeds: Seeds | None = None,
    headers: dict[str, str] | None = None,
    skip: Callable[[str], bool] = lambda _: False,
    progress: Callable[[str], None] = lambda _: None,
) -> FuzzReport:
    """Send up to ``examples`` generated requests per operation and mode to ``app`` (an ASGI
    app) and check every response. ``seed`` makes a run reproducible; ``skip(label)`` leaves
    an operation (``"POST /path"``) out; with ``seeds`` (from ``seed_library``) half the valid
    requests name things that exist and upload a real image; ``headers`` go with every request
    (an API key)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    report = FuzzReport()
    started = time.perf_counter()
    for operation in _destructive_last(schema):
        label = f"{operation.method.upper()} {operation.path}"
        if skip(label):
            continue
        for mode in modes:
            progress(f"{label} [{mode.value}]")
            _fuzz_operation(operation, label, mode, examples, seed, seeds, headers, report)
    report.seconds = time.perf_counter() - started
    return report
