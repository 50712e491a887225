"""Long jobs are durable rows that workers claim, on SQLite and PostgreSQL: a job waits pending
until a runner claims it, reports progress, is requeued when its worker dies and failed with a
reason after too many attempts, is never run by two runners at once, and is finished or handed
back when its runner stops. The API accepts jobs from a process with no worker threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import make_settings
from tests.test_library_api import jpeg
from viewfinder.api.app import create_app
from viewfinder.db import jobs as jobs_repo
from viewfinder.db.models import Job, utcnow
from viewfinder.errors import InvalidInputError
from viewfinder.library.jobs import JobHandler, JobInterrupted, JobRunner, Progress

TIMEOUT_S = 20.0

Handlers = dict[str, JobHandler[None]]


def echo(_: None, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    progress(1, 0, 2)
    progress(2, 0, 2)
    return {"echo": params}


@pytest.fixture
def runners(sessions: sessionmaker[Session]) -> Iterator[Callable[..., JobRunner[None]]]:
    """Build runners over the test database; every one is stopped at the end."""
    made: list[JobRunner[None]] = []

    def make(handlers: Handlers | None = None, **options: Any) -> JobRunner[None]:
        runner = JobRunner(sessions, handlers or {"echo": echo}, None, **options)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.stop(grace_s=0)


def job(sessions: sessionmaker[Session], job_id: str) -> Job:
    with sessions() as s:
        found = jobs_repo.get_job(s, job_id)
    assert found is not None
    return found


def claim_as_dead_worker(sessions: sessionmaker[Session], worker: str) -> str:
    """Claim the oldest pending job as a worker that then died: its heartbeat is an hour old."""
    with sessions.begin() as s:
        claimed = jobs_repo.claim_job(s, ["echo", "block"], worker)
        assert claimed is not None
        claimed.heartbeat_at = utcnow() - timedelta(hours=1)
        return claimed.id


class Gate:
    """A handler that reports, then blocks until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()
        self.interrupted = threading.Event()
        self.runs = 0

    def __call__(self, _: None, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
        self.runs += 1
        progress(1, 0, 3)
        self.entered.set()
        assert self.open.wait(TIMEOUT_S)
        try:
            progress(2, 0, 3)
        except JobInterrupted:
            self.interrupted.set()
            raise
        return {"runs": self.runs}


# --- claiming and progress ------------------------------------------------------------------------


def test_a_job_waits_pending_until_a_runner_runs_it(
    sessions: sessionmaker[Session], runners: Callable[..., JobRunner[None]]
) -> None:
    api = runners()  # a replica with no runner threads: it only inserts rows
    submitted = api.submit("echo", {"n": 1})
    assert (submitted.state, submitted.params) == ("pending", {"n": 1})
    assert job(sessions, submitted.id).state == "pending"
    with pytest.raises(ValueError, match="unknown job kind"):
        api.submit("nope", {})

    worker = runners()
    assert worker.run_one()
    done = job(sessions, submitted.id)
    assert (done.state, done.result, done.error) == ("done", {"echo": {"n": 1}}, None)
    assert (done.done, done.failed, done.total, done.attempts) == (2, 0, 2, 0)
    assert done.claimed_by is not None
    assert done.claimed_by.startswith(worker.name)
    assert not worker.run_one()


def test_progress_and_heartbeat_are_visible_while_a_job_runs(
    sessions: sessionmaker[Session], runners: Callable[..., JobRunner[None]]
) -> None:
    gate = Gate()
    runner = runners({"block": gate}, lease_s=0.2)  # heartbeat every 0.05 s
    runner.start(1)
    job_id = runner.submit("block", {}).id
    assert gate.entered.wait(TIMEOUT_S)
    running = job(sessions, job_id)
    assert (running.state, running.done, running.total) == ("running", 1, 3)
    first_beat = running.heartbeat_at
    assert first_beat is not None
    deadline = time.monotonic() + TIMEOUT_S
    while (beat := job(sessions, job_id).heartbeat_at) == first_beat:  # the handler is silent
        assert time.monotonic() < deadline, "the heartbeat was not renewed"
        time.sleep(0.02)
    assert beat is not None
    assert beat > first_beat
    gate.open.set()
    runner.stop(grace_s=TIMEOUT_S)  # waits for the running job
    done = job(sessions, job_id)
    assert (done.state, done.done, done.total, done.result) == ("done", 2, 3, {"runs": 1})


# --- dead workers ---------------------------------------------------------------------------------


def test_a_dead_workers_job_is_requeued_and_completed_by_another_runner(
    sessions: sessionmaker[Session], runners: Callable[..., JobRunner[None]]
) -> None:
    runner = runners(lease_s=60)
    job_id = runner.submit("echo", {}).id
    claim_as_dead_worker(sessions, "dead-host:1")
    live = runner.submit("echo", {"live": True}).id
    with sessions.begin() as s:  # a live worker's claim, heartbeat fresh: left alone
        assert jobs_repo.claim_job(s, ["echo"], "live-host:2") is not None

    assert runner.recover() == 1
    requeued = job(sessions, job_id)
    assert (requeued.state, requeued.attempts, requeued.claimed_by) == ("pending", 1, None)
    assert job(sessions, live).state == "running"
    assert runner.run_one()
    assert (job(sessions, job_id).state, job(sessions, job_id).attempts) == ("done", 1)


def test_at_start_every_running_job_of_the_single_embedded_process_is_an_orphan(
    sessions: sessionmaker[Session], runners: Callable[..., JobRunner[None]]
) -> None:
    ran = threading.Event()

    def signal(_: None, params: dict[str, Any], __: Progress) -> dict[str, Any]:
        ran.set()
        return {}

    runner = runners({"echo": signal})
    job_id = runner.submit("echo", {}).id
    with sessions.begin() as s:  # claimed by the previous run of this process, just now
        assert jobs_repo.claim_job(s, ["echo"], "this-host:1") is not None
    runner.start(1, orphan_lease_s=0)
    assert ran.wait(TIMEOUT_S)  # recovered at start, then run by the runner's thread
    runner.stop(grace_s=TIMEOUT_S)  # returns once the job is recorded
    assert (job(sessions, job_id).state, job(sessions, job_id).attempts) == ("done", 1)


def test_a_job_whose_workers_keep_dying_fails_with_the_reason(
    sessions: sessionmaker[Session], runners: Callable[..., JobRunner[None]]
) -> None:
    runner = runners(max_attempts=2)
    job_id = runner.submit("echo", {}).id
    claim_as_dead_worker(sessions, "dead-host:1")
    runner.recover()
    assert (job(sessions, job_id).state, job(sessions, job_id).attempts) == ("pending", 1)
    claim_as_dead_worker(sessions, "dead-host:2")
    runner.recover()
    failed = job(sessions, job_id)
    assert (failed.state, failed.attempts) == ("failed", 2)
    assert failed.error == "its worker stopped responding (2 attempts)"
    assert not runner.run_one()


def test_a_job_without_heartbeat_left_running_by_an_old_version_is_recovered(
    sessions: sessionmaker[Session], runners: Callable[..., JobRunner[None]]
) -> None:
    runner = runners(lease_s=60)
    job_id = runner.submit("echo", {}).id
    with sessions.begin() as s:
        stuck = s.get(Job, job_id)
        assert stuck is not None
        stuck.state, stuck.updated_at = "running", utcnow() - timedelta(hours=2)
    assert runner.recover() == 1
    assert job(sessions, job_id).state == "pending"


# --- handler errors -------------------------------------------------------------------------------


def test_a_handler_error_fails_the_job_with_its_message(
    sessions: sessionmaker[Session], runners: Callable[..., JobRunner[None]]
) -> None:
    calls: list[str] = []

    def refuse(_: None, params: dict[str, Any], __: Progress) -> dict[str, Any]:
        calls.append("refuse")
        raise InvalidInputError("no such collection: 7")

    def flaky(_: None, params: dict[str, Any], __: Progress) -> dict[str, Any]:
        calls.append("flaky")
        if calls.count("flaky") == 1:
            raise ConnectionError("database connection lost")
        return {"ok": True}

    def broken(_: None, params: dict[str, Any], __: Progress) -> dict[str, Any]:
        calls.append("broken")
        raise RuntimeError("a bug")

    handlers: Handlers = {"refuse": refuse, "flaky": flaky, "broken": broken}
    runner = runners(handlers, max_attempts=3)
    refused = runner.submit("refuse", {}).id
    flaked = runner.submit("flaky", {}).id
    bug = runner.submit("broken", {}).id
    while runner.run_one():
        pass

    expected = job(sessions, refused)  # expected errors: no retry
    assert (expected.state, expected.error, expected.attempts) == (
        "failed",
        "no such collection: 7",
        1,
    )
    recovered = job(sessions, flaked)  # unexpected errors: tried again
    assert (recovered.state, recovered.error, recovered.attempts) == ("done", None, 1)
    assert (job(sessions, bug).state, job(sessions, bug).error) == ("failed", "a bug")
    assert job(sessions, bug).attempts == 3
    assert (calls.count("refuse"), calls.count("flaky"), calls.count("broken")) == (1, 2, 3)


# --- concurrency ----------------------------------------------------------------------------------


def test_two_runners_never_run_the_same_job(
    sessions: sessionmaker[Session], runners: Callable[..., JobRunner[None]]
) -> None:
    ran: list[int] = []
    lock = threading.Lock()

    def record(_: None, params: dict[str, Any], __: Progress) -> dict[str, Any]:
        with lock:
            ran.append(params["n"])
        return {}

    pool = [runners({"record": record}) for _ in range(4)]
    ids = [pool[0].submit("record", {"n": n}).id for n in range(24)]
    barrier = threading.Barrier(len(pool))

    def drain(runner: JobRunner[None]) -> None:
        barrier.wait()
        while runner.run_one():
            pass

    threads = [threading.Thread(target=drain, args=(r,)) for r in pool]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S)
    assert sorted(ran) == list(range(24))
    assert {job(sessions, i).state for i in ids} == {"done"}
    assert len({job(sessions, i).claimed_by for i in ids}) == 24  # one claim token each


# --- stopping -------------------------------------------------------------------------------------


def test_stop_lets_a_job_finish_within_the_grace(
    sessions: sessionmaker[Session], runners: Callable[..., JobRunner[None]]
) -> None:
    gate = Gate()
    runner = runners({"block": gate})
    runner.start(1)
    job_id = runner.submit("block", {}).id
    assert gate.entered.wait(TIMEOUT_S)
    stopping = threading.Thread(target=runner.stop, kwargs={"grace_s": TIMEOUT_S})
    stopping.start()
    gate.open.set()
    stopping.join(TIMEOUT_S)
    assert not stopping.is_alive()
    assert job(sessions, job_id).state == "done"
    assert not runner.run_one()  # a stopped runner claims nothing


def test_stop_hands_back_a_job_still_running_after_the_grace(
    sessions: sessionmaker[Session], runners: Callable[..., JobRunner[None]]
) -> None:
    gate = Gate()
    first = runners({"block": gate})
    first.start(1)
    job_id = first.submit("block", {}).id
    assert gate.entered.wait(TIMEOUT_S)
    first.stop(grace_s=0)
    handed_back = job(sessions, job_id)
    assert (handed_back.state, handed_back.attempts, handed_back.claimed_by) == ("pending", 0, None)
    assert handed_back.done == 1  # progress so far stays visible

    gate.open.set()  # the abandoned handler learns at its next progress call
    assert gate.interrupted.wait(TIMEOUT_S)
    assert job(sessions, job_id).state == "pending"

    second = runners({"block": gate})
    assert second.run_one()
    resumed = job(sessions, job_id)
    assert (resumed.state, resumed.result, resumed.attempts) == ("done", {"runs": 2}, 0)


# --- through the API ------------------------------------------------------------------------------


def test_an_api_replica_without_workers_accepts_a_folder_import(
    tmp_path: Path, tiny_models: dict[str, Path], database_url: str
) -> None:
    roots = tmp_path / "imports"
    (roots / "photos").mkdir(parents=True)
    for n in range(3):
        (roots / "photos" / f"{n}.jpg").write_bytes(jpeg((40 * n, 90, 20), seed=n))
    settings = make_settings(
        tmp_path, tiny_models, import_roots=[roots], worker_threads=0, database_url=database_url
    )
    with TestClient(create_app(settings)) as client:
        accepted = client.post("/api/v1/imports", json={"path": str(roots / "photos")})
        assert accepted.status_code == 202
        job_id = accepted.json()["id"]
        assert client.get(f"/api/v1/jobs/{job_id}").json()["state"] == "pending"

        lib = client.app.state.services.require_library()  # type: ignore[attr-defined]
        assert lib.jobs.run_one()  # what a `viewfinder worker` process does
        state = client.get(f"/api/v1/jobs/{job_id}").json()
    assert (state["state"], state["done"], state["total"]) == ("done", 3, 3)
    assert (state["result"]["created"], state["result"]["existing"]) == (3, 0)
