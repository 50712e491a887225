"""The persistence layer on SQLite and PostgreSQL: migrations, assets and their filters, the task
queue under concurrent workers, embeddings, jobs."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from numpy.typing import NDArray
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from viewfinder.cli.main import app as cli
from viewfinder.db import assets as assets_repo
from viewfinder.db import embeddings as embeddings_repo
from viewfinder.db import jobs as jobs_repo
from viewfinder.db import tasks as tasks_repo
from viewfinder.db.engine import (
    make_engine,
    make_session_factory,
    normalize_url,
    sqlite_url_for,
)
from viewfinder.db.migrate import current_revision, head_revision, upgrade, upgrade_sql
from viewfinder.db.models import Asset, AssetTask, Base, Embedding, TaskState

EMBED = "embed"
FACES = "faces"
T = TypeVar("T")

_sha_counter = iter(range(10**9))


def new_asset(folder: str = "", captured_at: datetime | None = None) -> Asset:
    n = next(_sha_counter)
    return Asset(
        sha256=f"{n:064x}",
        original_filename=f"img{n}.jpg",
        folder=folder,
        content_type="image/jpeg",
        size_bytes=1000 + n,
        width=640,
        height=480,
        captured_at=captured_at,
    )


def add_assets(
    sessions: sessionmaker[Session], count: int, kinds: Sequence[str] = (EMBED,)
) -> list[int]:
    with sessions.begin() as s:
        return [assets_repo.add_asset(s, new_asset(), kinds).id for _ in range(count)]


def run_concurrently(workers: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(i)`` on ``workers`` threads released together by a barrier."""
    barrier = threading.Barrier(workers)

    def start(i: int) -> T:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(start, range(workers)))


# --- engine and URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "postgresql+asyncpg://postgres:postgres@localhost:5432/image_search",
            "postgresql+psycopg://postgres:postgres@localhost:5432/image_search",
        ),
        ("postgresql://u:p@db:5433/x", "postgresql+psycopg://u:p@db:5433/x"),
        ("postgres://u@db/x", "postgresql+psycopg://u@db/x"),
        ("postgresql+psycopg2://u@db/x", "postgresql+psycopg://u@db/x"),
        ("postgresql+psycopg://u@db/x", "postgresql+psycopg://u@db/x"),
        ("postgresql+asyncpg://u@db/x?ssl=require", "postgresql+psycopg://u@db/x?sslmode=require"),
        ("postgresql://u:p%40ss@db/x", "postgresql+psycopg://u:p%40ss@db/x"),
        ("sqlite+aiosqlite:///./image_organizer.db", "sqlite:///./image_organizer.db"),
        ("sqlite+aiosqlite:////abs/path.db", "sqlite:////abs/path.db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_normalize_url(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


def test_sqlite_engine_settings(tmp_path: Path) -> None:
    url = sqlite_url_for(tmp_path / "not" / "yet")
    assert url == f"sqlite:///{tmp_path / 'not' / 'yet' / 'viewfinder.db'}"
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert pragma("PRAGMA busy_timeout").scalar() == 30_000
        assert (tmp_path / "not" / "yet" / "viewfinder.db").is_file()
    finally:
        engine.dispose()


def test_migrated_sqlite_file_is_in_wal_mode(sqlite_template: Path) -> None:
    import sqlite3

    # A plain connection, without make_engine's pragmas: WAL must be persistent in the file.
    connection = sqlite3.connect(sqlite_template)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        connection.close()


# --- migrations -----------------------------------------------------------------------------------


def test_migrations_match_models(engine: Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    assert current_revision(engine) == head_revision() is not None


def test_upgrade_twice_is_a_noop(
    database_url: str, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    asset_id = add_assets(sessions, 1)[0]

    def schema() -> dict[str, list[str]]:
        inspector = inspect(engine)
        return {
            t: [c["name"] for c in inspector.get_columns(t)] for t in inspector.get_table_names()
        }

    before = schema()
    upgrade(database_url)
    upgrade(engine)
    assert schema() == before
    assert current_revision(engine) == head_revision()
    if engine.dialect.name == "sqlite":
        # The migration switches foreign keys off on its connection: back on for the pool.
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with sessions() as s:
        assert assets_repo.get_asset(s, asset_id) is not None


def test_concurrent_upgrades_of_a_fresh_database(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        assert current_revision(engine) is None
        # Separate processes, as when a server and its workers start together (fork: a spawned
        # interpreter would spend seconds re-importing).
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with context.Pool(3) as pool:
            pool.map(upgrade, [empty_database_url] * 3)
        assert current_revision(engine) == head_revision()
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        engine.dispose()


def test_offline_sql_creates_every_table(tmp_path: Path) -> None:
    """``viewfinder db upgrade --sql`` prints it for a DBA, connecting to nothing."""
    env = {
        "VIEWFINDER_DATABASE_URL": "postgresql://u@db.invalid/x",
        "VIEWFINDER_DATA_DIR": str(tmp_path),
    }
    printed = CliRunner().invoke(cli, ["db", "upgrade", "--sql"], env=env)
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == upgrade_sql("postgresql://u@db.invalid/x") + "\n"
    for table in Base.metadata.sorted_tables:
        assert f"CREATE TABLE {table.name}" in printed.stdout


# --- assets ---------------------------------------------------------------------------------------


def test_add_get_and_duplicate_sha(sessions: sessionmaker[Session]) -> None:
    asset = new_asset("nature", captured_at=datetime(2024, 5, 1, 12, tzinfo=UTC))
    with sessions.begin() as s:
        assets_repo.add_asset(s, asset, [EMBED, FACES, EMBED])
    assert asset.id is not None
    with sessions() as s:
        loaded = assets_repo.get_asset(s, asset.id)
        assert loaded is not None
        assert (loaded.sha256, loaded.folder) == (asset.sha256, "nature")
        assert loaded.captured_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
        assert loaded.created_at.tzinfo is not None
        by_sha = assets_repo.get_asset_by_sha(s, asset.sha256)
        assert by_sha is not None
        assert by_sha.id == asset.id
        assert assets_repo.get_asset_by_sha(s, "f" * 64) is None
        assert assets_repo.get_asset(s, asset.id + 1000) is None
        tasks = s.scalars(select(AssetTask).where(AssetTask.asset_id == asset.id)).all()
        assert sorted((t.kind, t.state, t.attempts) for t in tasks) == [
            (EMBED, "pending", 0),
            (FACES, "pending", 0),
        ]

    duplicate = new_asset()
    duplicate.sha256 = asset.sha256
    with sessions() as s:
        with pytest.raises(IntegrityError):
            assets_repo.add_asset(s, duplicate, [EMBED])
        s.rollback()
        assert s.scalar(select(func.count()).select_from(Asset)) == 1


def test_timestamps_come_back_as_utc(sessions: sessionmaker[Session]) -> None:
    plus_two = timezone(timedelta(hours=2))
    with sessions.begin() as s:
        asset_id = assets_repo.add_asset(
            s, new_asset(captured_at=datetime(2024, 5, 1, 14, 30, tzinfo=plus_two)), [EMBED]
        ).id
    with sessions() as s:
        loaded = s.get(Asset, asset_id, populate_existing=True)
        assert loaded is not None
        assert loaded.captured_at == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
        assert loaded.captured_at is not None
        assert loaded.captured_at.utcoffset() == timedelta(0)


FOLDERS = [
    "",
    "nature",
    "nature/birds",
    "nature/birds/owls",
    "naturephotos",
    "naturephotos/x",
    "Nature/upper",
    "a_b",
    "a_b/c",
    "axb",
    "axb/c",
    "100%",
    "100%/sub",
    "1000/sub",
    "100 percent/sub",
]


def expected_in_folder(folder: str, include_subfolders: bool) -> set[str]:
    folder = folder.strip("/")
    if not include_subfolders:
        return {f for f in FOLDERS if f == folder}
    if not folder:
        return set(FOLDERS)
    return {f for f in FOLDERS if f == folder or f.startswith(folder + "/")}


@pytest.mark.parametrize(
    ("folder", "include_subfolders"),
    [
        ("nature", True),
        ("nature", False),
        ("nature/", True),
        ("nature/birds", True),
        ("a_b", True),
        ("100%", True),
        ("100%", False),
        ("", True),
        ("", False),
        ("missing", True),
    ],
)
def test_folder_filters(
    sessions: sessionmaker[Session], folder: str, include_subfolders: bool
) -> None:
    with sessions.begin() as s:
        ids = {assets_repo.add_asset(s, new_asset(f), [EMBED]).id: f for f in FOLDERS}
    expected = expected_in_folder(folder, include_subfolders)
    with sessions() as s:
        listed = assets_repo.list_assets(
            s, limit=100, offset=0, folder=folder, include_subfolders=include_subfolders
        )
        assert {a.folder for a in listed} == expected
        assert [a.id for a in listed] == sorted(a.id for a in listed)
        count = assets_repo.count_assets(s, folder=folder, include_subfolders=include_subfolders)
        assert count == len(expected)
        matching = assets_repo.asset_ids_matching(
            s, folder=folder, include_subfolders=include_subfolders
        )
        assert matching.dtype == np.int64
        assert [ids[int(i)] for i in matching] == [a.folder for a in listed]


def test_folder_prefix_is_not_a_wildcard_or_case_blind(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        for f in FOLDERS:
            assets_repo.add_asset(s, new_asset(f), [EMBED])
    with sessions() as s:
        nature = {a.folder for a in assets_repo.list_assets(s, folder="nature")}
        assert "naturephotos" not in nature
        assert "Nature/upper" not in nature
        assert {a.folder for a in assets_repo.list_assets(s, folder="a_b")} == {"a_b", "a_b/c"}
        assert {a.folder for a in assets_repo.list_assets(s, folder="100%")} == {"100%", "100%/sub"}
        assert assets_repo.folders(s) == sorted(set(FOLDERS))


def test_paging_and_capture_range(sessions: sessionmaker[Session]) -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    captured = [base + timedelta(days=d) for d in range(10)] + [None, None]
    with sessions.begin() as s:
        ids = [
            assets_repo.add_asset(s, new_asset("trips" if i % 2 else "home", c), [EMBED]).id
            for i, c in enumerate(captured)
        ]
    with sessions() as s:
        pages = [assets_repo.list_assets(s, limit=5, offset=o) for o in (0, 5, 10)]
        assert [[a.id for a in page] for page in pages] == [ids[0:5], ids[5:10], ids[10:12]]
        assert assets_repo.count_assets(s) == 12

        start, end = base + timedelta(days=2), base + timedelta(days=6)
        in_range = [i for i, c in zip(ids, captured, strict=True) if c and start <= c < end]
        assert len(in_range) == 4  # half-open: day 6 itself is out
        listed = assets_repo.list_assets(s, captured_from=start, captured_to=end)
        assert [a.id for a in listed] == in_range
        assert assets_repo.count_assets(s, captured_from=start, captured_to=end) == 4
        matching = assets_repo.asset_ids_matching(s, captured_from=start, captured_to=end)
        assert matching.tolist() == in_range

        # The same instants written in another zone select the same rows.
        zone = timezone(timedelta(hours=-5))
        shifted = assets_repo.asset_ids_matching(
            s, captured_from=start.astimezone(zone), captured_to=end.astimezone(zone)
        )
        assert shifted.tolist() == in_range

        since = assets_repo.asset_ids_matching(s, captured_from=base + timedelta(days=8))
        assert since.tolist() == ids[8:10]  # no capture time: never matches a time filter
        trips = assets_repo.asset_ids_matching(
            s, folder="trips", captured_to=base + timedelta(days=5)
        )
        assert trips.tolist() == [ids[1], ids[3]]


def test_delete_asset_cascades(sessions: sessionmaker[Session]) -> None:
    keep, gone = add_assets(sessions, 2, kinds=(EMBED, FACES))
    with sessions.begin() as s:
        for asset_id in (keep, gone):
            embeddings_repo.put_embedding(s, asset_id, "clip", np.ones(4, dtype=np.float32))
    with sessions.begin() as s:
        assert assets_repo.delete_asset(s, gone) is True
        assert assets_repo.delete_asset(s, gone) is False
    with sessions() as s:
        assert assets_repo.get_asset(s, gone) is None
        task_owners = s.scalars(select(AssetTask.asset_id)).all()
        assert sorted(task_owners) == [keep, keep]
        assert s.scalars(select(Embedding.asset_id)).all() == [keep]


# --- task queue -----------------------------------------------------------------------------------


def test_claim_order_limit_and_kind(sessions: sessionmaker[Session]) -> None:
    ids = add_assets(sessions, 10, kinds=(EMBED, FACES))
    with sessions.begin() as s:
        first = list(tasks_repo.claim_tasks(s, EMBED, "w1", 3))
        second = list(tasks_repo.claim_tasks(s, EMBED, "w2", 4))
        assert tasks_repo.claim_tasks(s, EMBED, "w3", 0) == {}
    assert first == ids[:3]
    assert second == ids[3:7]
    with sessions() as s:
        task = tasks_repo.task_state(s, ids[0], EMBED)
        assert task is not None
        assert (task.state, task.claimed_by) == ("running", "w1")
        assert task.claimed_at is not None
        assert abs(task.claimed_at - datetime.now(UTC)) < timedelta(minutes=1)
        assert tasks_repo.task_counts(s, EMBED) == {
            "pending": 3,
            "running": 7,
            "done": 0,
            "failed": 0,
        }
        assert tasks_repo.task_counts(s, FACES) == {
            "pending": 10,
            "running": 0,
            "done": 0,
            "failed": 0,
        }
        assert tasks_repo.task_counts(s, "nothing") == dict.fromkeys(TaskState, 0)
    with sessions.begin() as s:
        assert tasks_repo.claim_tasks(s, EMBED, "w1", 100) == dict.fromkeys(ids[7:], 0)
        assert tasks_repo.claim_tasks(s, EMBED, "w1", 100) == {}


def test_concurrent_claims_never_overlap(sessions: sessionmaker[Session]) -> None:
    ids = add_assets(sessions, 200)

    def worker(n: int) -> list[int]:
        mine: list[int] = []
        while True:
            with sessions.begin() as s:
                claimed = list(tasks_repo.claim_tasks(s, EMBED, f"worker-{n}", 7))
            if not claimed:
                return mine
            mine.extend(claimed)

    claims = run_concurrently(8, worker)
    flat = [i for claim in claims for i in claim]
    assert len(flat) == len(set(flat)) == 200
    assert set(flat) == set(ids)
    with sessions() as s:
        assert tasks_repo.task_counts(s, EMBED)["running"] == 200
        owners = s.execute(select(AssetTask.asset_id, AssetTask.claimed_by)).all()
    by_worker = {i: f"worker-{n}" for n, claim in enumerate(claims) for i in claim}
    assert dict(owners) == by_worker


def test_complete_fail_retry_and_enqueue(sessions: sessionmaker[Session]) -> None:
    done_id, flaky_id = add_assets(sessions, 2)
    with sessions.begin() as s:
        tasks_repo.claim_tasks(s, EMBED, "w", 10)
        assert tasks_repo.complete_tasks(s, [done_id], EMBED) == [done_id]
        assert tasks_repo.complete_tasks(s, [done_id + 1000], EMBED) == []
    states = []
    for attempt in range(1, 4):
        with sessions.begin() as s:
            if attempt > 1:
                assert tasks_repo.claim_tasks(s, EMBED, "w", 10) == {flaky_id: attempt - 1}
            states.append(
                tasks_repo.fail_task(s, flaky_id, EMBED, f"boom {attempt}", max_attempts=3)
            )
    assert states == ["pending", "pending", "failed"]
    with sessions() as s:
        task = tasks_repo.task_state(s, flaky_id, EMBED)
        assert task is not None
        assert (task.state, task.attempts, task.last_error) == ("failed", 3, "boom 3")
        assert task.claimed_by is None
        assert tasks_repo.task_counts(s, EMBED) == {
            "pending": 0,
            "running": 0,
            "done": 1,
            "failed": 1,
        }
        assert tasks_repo.claim_tasks(s, EMBED, "w", 10) == {}
        with pytest.raises(LookupError):
            tasks_repo.fail_task(s, flaky_id, FACES, "no such task", max_attempts=3)

    with sessions.begin() as s:
        tasks_repo.enqueue_task(s, flaky_id, EMBED)  # re-process: fresh attempts
        tasks_repo.enqueue_task(s, done_id, FACES)  # a kind the asset never had
    with sessions() as s:
        task = tasks_repo.task_state(s, flaky_id, EMBED)
        assert task is not None
        assert (task.state, task.attempts, task.last_error) == ("pending", 0, None)
        faces = tasks_repo.task_state(s, done_id, FACES)
        assert faces is not None
        assert faces.state == "pending"
        assert tasks_repo.task_state(s, flaky_id, FACES) is None
    with pytest.raises(IntegrityError), sessions.begin() as s:
        tasks_repo.enqueue_task(s, flaky_id + 1000, EMBED)  # no such asset


def test_requeue_stale_counts_an_attempt_and_release_does_not(
    sessions: sessionmaker[Session],
) -> None:
    ids = add_assets(sessions, 6)
    with sessions.begin() as s:
        alice = list(tasks_repo.claim_tasks(s, EMBED, "alice/1", 2))
        bob = list(tasks_repo.claim_tasks(s, EMBED, "bob/1", 2))
    with sessions() as s:
        claimed_at = [
            t.claimed_at for i in alice + bob if (t := tasks_repo.task_state(s, i, EMBED))
        ]
    assert all(c is not None for c in claimed_at)
    earliest = min(c for c in claimed_at if c is not None)

    with sessions.begin() as s:
        assert tasks_repo.requeue_stale(s, EMBED, earliest - timedelta(seconds=1), 3) == 0
        assert tasks_repo.requeue_stale(s, FACES, datetime.now(UTC) + timedelta(seconds=1), 3) == 0
        assert tasks_repo.release_worker(s, EMBED, "alice") == 2  # a clean stop: no attempt counted
        assert tasks_repo.release_worker(s, EMBED, "alice") == 0
    with sessions() as s:
        task = tasks_repo.task_state(s, alice[0], EMBED)
        assert task is not None
        assert (task.state, task.claimed_by, task.claimed_at, task.attempts) == (
            "pending",
            None,
            None,
            0,
        )
    with sessions.begin() as s:  # bob died: his lease expires
        assert tasks_repo.requeue_stale(s, EMBED, datetime.now(UTC) + timedelta(seconds=1), 3) == 2
    with sessions() as s:
        task = tasks_repo.task_state(s, bob[0], EMBED)
        assert task is not None
        assert (task.state, task.attempts) == ("pending", 1)
        assert task.last_error == "its worker bob/1 stopped while processing it"
    with sessions.begin() as s:
        assert tasks_repo.task_counts(s, EMBED)["pending"] == 6
        assert list(tasks_repo.claim_tasks(s, EMBED, "carol/1", 10)) == ids


def test_a_task_that_kills_its_worker_fails_at_the_attempt_limit(
    sessions: sessionmaker[Session],
) -> None:
    (poison,) = add_assets(sessions, 1)
    for attempt in range(3):
        with sessions.begin() as s:
            assert tasks_repo.claim_tasks(s, EMBED, f"w{attempt}/x", 10) == {poison: attempt}
        with sessions.begin() as s:
            tasks_repo.requeue_stale(s, EMBED, datetime.now(UTC) + timedelta(seconds=1), 3)
    with sessions() as s:
        task = tasks_repo.task_state(s, poison, EMBED)
        assert task is not None
        assert (task.state, task.attempts) == ("failed", 3)
        assert task.last_error == "its worker w2/x stopped while processing it"


def test_a_lost_claim_cannot_complete_renew_or_fail(sessions: sessionmaker[Session]) -> None:
    (asset,) = add_assets(sessions, 1)
    with sessions.begin() as s:
        tasks_repo.claim_tasks(s, EMBED, "slow/1", 1)
    with sessions.begin() as s:  # slow's lease expired; fast takes the task over
        tasks_repo.requeue_stale(s, EMBED, datetime.now(UTC) + timedelta(seconds=1), 3)
        tasks_repo.claim_tasks(s, EMBED, "fast/1", 1)
    with sessions.begin() as s:
        assert tasks_repo.renew_claims(s, EMBED, "slow/1") == 0
        assert tasks_repo.complete_tasks(s, [asset], EMBED, "slow/1") == []
        with pytest.raises(LookupError):
            tasks_repo.fail_task(s, asset, EMBED, "late", 3, "slow/1")
        assert tasks_repo.release_tasks(s, EMBED, "slow/1") == 0
        assert tasks_repo.renew_claims(s, EMBED, "fast/1") == 1
        assert tasks_repo.complete_tasks(s, [asset], EMBED, "fast/1") == [asset]
    with sessions() as s:
        task = tasks_repo.task_state(s, asset, EMBED)
        assert task is not None
        assert (task.state, task.attempts) == ("done", 1)


# --- embeddings -----------------------------------------------------------------------------------


def awkward_vectors(count: int, dim: int, seed: int) -> NDArray[np.float32]:
    """Random float32 vectors salted with values a lossy round trip would change."""
    vectors = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    specials = [-0.0, 1e-45, float(np.finfo(np.float32).max), float("nan")]
    vectors[0, :4] = np.array(specials, dtype=np.float32)  # 1e-45: the smallest subnormal
    return vectors


def test_embeddings_round_trip_bit_exact_and_upsert(sessions: sessionmaker[Session]) -> None:
    ids = add_assets(sessions, 3)
    vectors = awkward_vectors(3, 512, seed=1)
    with sessions.begin() as s:
        for asset_id, vector in zip(ids, vectors, strict=True):
            embeddings_repo.put_embedding(s, asset_id, "clip", vector)
        embeddings_repo.put_embedding(s, ids[0], "dino", np.arange(768, dtype=np.float32))
    with sessions() as s:
        got = embeddings_repo.get_embeddings(
            s, "clip", [ids[2], ids[0], ids[1], ids[0], ids[2] + 1000]
        )
        assert sorted(got) == ids
        for asset_id, vector in zip(ids, vectors, strict=True):
            assert got[asset_id].dtype == np.float32
            assert got[asset_id].tobytes() == vector.tobytes()
        assert embeddings_repo.get_embeddings(s, "dino", ids)[ids[0]].shape == (768,)
        assert embeddings_repo.count_embeddings(s, "clip") == 3
        assert embeddings_repo.count_embeddings(s, "dino") == 1
        stored = s.scalar(select(Embedding.vector).where(Embedding.asset_id == ids[1]))
        assert stored == vectors[1].astype("<f4").tobytes()

    replacement = awkward_vectors(1, 512, seed=2)[0]
    with sessions.begin() as s:
        embeddings_repo.put_embedding(s, ids[1], "clip", replacement)
    with sessions() as s:
        assert (
            embeddings_repo.get_embeddings(s, "clip", [ids[1]])[ids[1]].tobytes()
            == replacement.tobytes()
        )
        assert embeddings_repo.count_embeddings(s, "clip") == 3
        with pytest.raises(ValueError, match="1-D"):
            embeddings_repo.put_embedding(s, ids[0], "clip", vectors)


@pytest.mark.parametrize("batch_size", [7, 5, 1000])
def test_iter_embeddings_covers_every_row_in_order(
    sessions: sessionmaker[Session], batch_size: int
) -> None:
    ids = add_assets(sessions, 30)
    with_clip = ids[::3] + ids[1::3]  # a third of the assets have no clip vector
    vectors = awkward_vectors(len(with_clip), 16, seed=3)
    with sessions.begin() as s:
        for asset_id, vector in zip(with_clip, vectors, strict=True):
            embeddings_repo.put_embedding(s, asset_id, "clip", vector)
        for asset_id in ids:  # another model's rows interleave with the clip rows
            embeddings_repo.put_embedding(s, asset_id, "dino", np.zeros(8, dtype=np.float32))
    expected = dict(zip(with_clip, vectors, strict=True))

    with sessions() as s:
        batches = list(embeddings_repo.iter_embeddings(s, "clip", batch_size=batch_size))
        assert embeddings_repo.embedding_ids(s, "clip").tolist() == sorted(with_clip)
    sizes = [len(batch_ids) for batch_ids, _ in batches]
    assert sizes[:-1] == [batch_size] * (len(sizes) - 1)
    assert 0 < sizes[-1] <= batch_size
    all_ids = np.concatenate([batch_ids for batch_ids, _ in batches])
    assert all_ids.dtype == np.int64
    assert all_ids.tolist() == sorted(with_clip)
    for batch_ids, matrix in batches:
        assert matrix.dtype == np.float32
        assert matrix.shape == (len(batch_ids), 16)
        for asset_id, row in zip(batch_ids, matrix, strict=True):
            assert row.tobytes() == expected[int(asset_id)].tobytes()


def test_embeddings_of_an_unknown_model_are_empty(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        assert list(embeddings_repo.iter_embeddings(s, "nothing")) == []
        assert embeddings_repo.embedding_ids(s, "nothing").shape == (0,)
        assert embeddings_repo.get_embeddings(s, "nothing", [1, 2]) == {}
        assert embeddings_repo.count_embeddings(s, "nothing") == 0


# --- jobs -----------------------------------------------------------------------------------------


def test_jobs_create_claim_progress_finish_list(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        ingest = jobs_repo.create_job(s, "ingest", {"path": "/photos"}, total=10)
        cluster = jobs_repo.create_job(s, "cluster", {"k": 8})
    with sessions.begin() as s:
        job = jobs_repo.get_job(s, ingest.id)
        assert job is not None
        assert (job.kind, job.state, job.params, job.total, job.done, job.attempts) == (
            "ingest",
            "pending",
            {"path": "/photos"},
            10,
            0,
            0,
        )
        assert len(job.id) == 32
        claimed = jobs_repo.claim_job(s, ["ingest"], "w1")
        assert claimed is not None
        assert claimed.heartbeat_at is not None
        assert jobs_repo.heartbeat_job(s, ingest.id, "w1", done=9, failed=1, total=10)
        assert not jobs_repo.heartbeat_job(s, ingest.id, "w2")  # not w2's claim
        assert not jobs_repo.heartbeat_job(s, cluster.id, "w1")  # not claimed at all
        with pytest.raises(TypeError):
            jobs_repo.heartbeat_job(s, ingest.id, "w1", colour=1)
        assert not jobs_repo.finish_job(s, ingest.id, "w2", {"added": 0})
        assert jobs_repo.finish_job(s, ingest.id, "w1", {"added": 9})
        assert not jobs_repo.finish_job(s, ingest.id, "w1", {"added": 9})  # no longer running
    with sessions() as s:
        assert [j.id for j in jobs_repo.list_jobs(s)] == [cluster.id, ingest.id]
        assert [j.id for j in jobs_repo.list_jobs(s, kind="ingest")] == [ingest.id]
        assert len(jobs_repo.list_jobs(s, limit=1)) == 1
        done = jobs_repo.get_job(s, ingest.id)
        assert done is not None
        assert (done.state, done.result, done.done, done.failed) == ("done", {"added": 9}, 9, 1)


def test_failed_and_released_jobs(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        job_id = jobs_repo.create_job(s, "ingest", {}).id
    for attempt in (1, 2):
        with sessions.begin() as s:
            assert jobs_repo.claim_job(s, ["ingest"], f"w{attempt}") is not None
            assert jobs_repo.fail_job(s, job_id, "other", "boom", 2) is None
            expected = "pending" if attempt == 1 else "failed"
            assert jobs_repo.fail_job(s, job_id, f"w{attempt}", "boom", 2) == expected
    with sessions.begin() as s:
        job = jobs_repo.get_job(s, job_id)
        assert job is not None
        assert (job.state, job.attempts, job.error) == ("failed", 2, "boom")
        again = jobs_repo.create_job(s, "ingest", {}).id
        assert jobs_repo.claim_job(s, ["ingest"], "w3") is not None
        assert jobs_repo.release_job(s, again, "w3")
        released = jobs_repo.get_job(s, again)
        assert released is not None
        assert (released.state, released.attempts, released.claimed_by) == ("pending", 0, None)


def test_claim_job_oldest_first_of_given_kinds(sessions: sessionmaker[Session]) -> None:
    made = []
    for kind in ("ingest", "cluster", "ingest"):
        with sessions.begin() as s:
            made.append(jobs_repo.create_job(s, kind, {}).id)
    with sessions.begin() as s:
        first = jobs_repo.claim_job(s, ["ingest"], "w1")
        assert first is not None
        assert (first.id, first.state, first.claimed_by) == (made[0], "running", "w1")
        second = jobs_repo.claim_job(s, ["ingest", "cluster"], "w2")
        assert second is not None
        assert second.id == made[1]
        third = jobs_repo.claim_job(s, ["ingest"], "w3")
        assert third is not None
        assert third.id == made[2]
        assert jobs_repo.claim_job(s, ["ingest", "cluster"], "w4") is None
        assert jobs_repo.claim_job(s, [], "w4") is None


def test_concurrent_job_claims_never_overlap(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        made = {jobs_repo.create_job(s, "ingest", {"n": n}).id for n in range(12)}

    def worker(n: int) -> list[str]:
        mine: list[str] = []
        while True:
            with sessions.begin() as s:
                job = jobs_repo.claim_job(s, ["ingest"], f"w{n}")
            if job is None:
                return mine
            mine.append(job.id)

    claims: Iterable[list[str]] = run_concurrently(4, worker)
    flat = [job_id for claim in claims for job_id in claim]
    assert sorted(flat) == sorted(made)


def test_session_factory_keeps_objects_readable_after_commit(engine: Engine) -> None:
    sessions = make_session_factory(engine)
    with sessions.begin() as s:
        asset = assets_repo.add_asset(s, new_asset("kept"), [EMBED])
    assert asset.folder == "kept"  # no DetachedInstanceError: not expired on commit
