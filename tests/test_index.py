"""Vector indexes: HNSW against the exact reference (synthetic clusters and real photos), upsert
and removal, filters inside the search, the fingerprint, saving and loading, kill -9 during a
save, and concurrent use."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from viewfinder.index import (
    ExactIndex,
    Hit,
    IndexCorruptError,
    IndexLoadError,
    IndexMismatchError,
    IndexMissingError,
    VectorIndex,
    digest_ids,
    load_index,
)
from viewfinder.index.hnsw import HnswIndex
from viewfinder.runtime.device import FP32

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TOLERANCE = 1e-5
DIM = 64

IndexFactory = Callable[[int], VectorIndex]

FACTORIES: dict[str, IndexFactory] = {
    "exact": ExactIndex,
    # ef_search high enough that a few thousand vectors are searched exhaustively in effect.
    "hnsw": lambda dim: HnswIndex(dim, ef_search=256),
    # Every filter through the graph walk (no exact scoring of small allowed sets), wide enough
    # to cover these small graphs: checks the FAISS selector and the id mapping, not recall.
    "hnsw-graph-filters": lambda dim: HnswIndex(
        dim, ef_search=1024, exact_filter_max=0, exact_scan_max=0
    ),
}


def clustered(n: int, dim: int, seed: int) -> NDArray[np.float32]:
    """Unit vectors around 40 centres, with a few exact duplicates (the same photo twice)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, dim))
    vectors = centres[rng.integers(0, 40, n)] + 0.6 * rng.standard_normal((n, dim))
    vectors[n - 10 :] = vectors[:10]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def make_ids(n: int, style: str, seed: int) -> NDArray[np.int64]:
    """Dense (database autoincrement, shuffled) or sparse (any int64, negatives included)."""
    rng = np.random.default_rng(seed)
    if style == "dense":
        return (rng.permutation(n) + 1).astype(np.int64)
    return rng.choice(np.unique(rng.integers(-(2**62), 2**62, 2 * n)), n, replace=False)


def assert_hits_sorted(hits: Sequence[Hit]) -> None:
    for a, b in itertools.pairwise(hits):
        assert a.score > b.score or (a.score == b.score and a.id < b.id), (a, b)


def assert_same_hits(
    expected: Sequence[Hit], actual: Sequence[Hit], score_of: Callable[[int], float]
) -> None:
    """Same neighbours, scores within TOLERANCE; float noise may only reorder near-equal scores,
    so an id found by one side only must score within TOLERANCE of the last expected score."""
    assert len(actual) == len(expected)
    assert_hits_sorted(actual)
    for e, a in zip(expected, actual, strict=True):
        assert abs(e.score - a.score) <= TOLERANCE, (expected, actual)
    only_one_side = {h.id for h in expected} ^ {h.id for h in actual}
    for hit_id in only_one_side:
        assert abs(score_of(hit_id) - expected[-1].score) <= TOLERANCE, (expected, actual)


def scorer(
    vectors: dict[int, NDArray[np.float32]], query: NDArray[np.float32]
) -> Callable[[int], float]:
    """The exact cosine of an id's vector with the query (vectors are unit length)."""
    return lambda hit_id: float(vectors[hit_id] @ query)


def build(
    factory: IndexFactory, ids: NDArray[np.int64], vectors: NDArray[np.float32]
) -> VectorIndex:
    index = factory(vectors.shape[1])
    index.add(ids, vectors)
    return index


@pytest.fixture(scope="module", params=["dense", "sparse"])
def synthetic(request: pytest.FixtureRequest) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    n = 3000
    return make_ids(n, request.param, seed=1), clustered(n, DIM, seed=2)


def filters(ids: NDArray[np.int64], seed: int) -> dict[str, NDArray[np.int64] | None]:
    rng = np.random.default_rng(seed)
    return {
        "none": None,
        "10%": rng.choice(ids, ids.size // 10, replace=False),
        "3 ids": rng.choice(ids, 3, replace=False),
        "empty": np.empty(0, dtype=np.int64),
        # Ids the index does not hold are ignored, duplicates count once.
        "with strangers": np.concatenate([ids[:5], ids[:5], np.array([10**15, -7])]),
    }


@pytest.mark.parametrize("kind", ["hnsw", "hnsw-graph-filters"])
def test_hnsw_matches_exact_on_clustered_vectors(
    kind: str, synthetic: tuple[NDArray[np.int64], NDArray[np.float32]]
) -> None:
    ids, vectors = synthetic
    exact = build(ExactIndex, ids, vectors)
    approx = build(FACTORIES[kind], ids, vectors)
    queries = clustered(40, DIM, seed=3)
    by_id = dict(zip(ids.tolist(), vectors, strict=True))
    for name, allowed in filters(ids, seed=4).items():
        expected_n = 10 if allowed is None else min(10, len(set(allowed.tolist()) & set(by_id)))
        for q in queries:
            expected = exact.search(q, 10, allowed)
            assert len(expected) == expected_n, name
            assert_same_hits(expected, approx.search(q, 10, allowed), scorer(by_id, q))


def photo_embedding(path: Path) -> NDArray[np.float32]:
    """A deterministic model-free embedding: an 8x8 thumbnail plus a 4x4x4 colour histogram."""
    with Image.open(path) as image:
        image.draft("RGB", (64, 64))
        rgb = image.convert("RGB")
    thumbnail = np.asarray(rgb.resize((8, 8), Image.Resampling.BOX), dtype=np.float32) / 255
    pixels = np.asarray(rgb.resize((32, 32), Image.Resampling.BOX)).reshape(-1, 3)
    histogram = np.histogramdd(pixels, bins=(4, 4, 4), range=[(0, 256)] * 3)[0].ravel()
    return np.concatenate([thumbnail.ravel(), histogram / pixels.shape[0]]).astype(np.float32)


@pytest.mark.shared
@pytest.mark.parametrize("kind", ["hnsw", "hnsw-graph-filters"])
def test_hnsw_matches_exact_on_real_photos(kind: str) -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (../shared not beside the repository)")
    paths = sorted(
        p for p in SHARED_DATA.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    )
    assert len(paths) > 20
    raw = np.stack([photo_embedding(p) for p in paths])
    # Centred so cosine compares content rather than "all pixels are positive".
    vectors = raw - raw.mean(axis=0)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(100, 100 + len(paths), dtype=np.int64)
    exact = build(ExactIndex, ids, vectors)
    approx = build(FACTORIES[kind], ids, vectors)
    by_id = dict(zip(ids.tolist(), vectors, strict=True))
    for name, allowed in filters(ids, seed=5).items():
        for q in vectors:
            expected = exact.search(q, 5, allowed)
            actual = approx.search(q, 5, allowed)
            assert_same_hits(expected, actual, scorer(by_id, q))
            if allowed is None:
                # A photo is its own nearest neighbour (or ties with an identical copy).
                assert actual[0].score == pytest.approx(1.0, abs=TOLERANCE), name


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_upsert_replaces_the_vector_and_last_occurrence_wins(kind: str) -> None:
    vectors = clustered(200, DIM, seed=6)
    index = build(FACTORIES[kind], np.arange(200), vectors[:200])
    replacement = clustered(3, DIM, seed=7)
    index.add(np.array([5, 5]), replacement[:2])
    assert len(index) == 200
    [top] = index.search(replacement[1], 1)
    assert top.id == 5
    assert top.score == pytest.approx(1.0, abs=TOLERANCE)
    old_score = next(h.score for h in index.search(vectors[5], 200) if h.id == 5)
    assert old_score == pytest.approx(float(vectors[5] @ replacement[1]), abs=TOLERANCE)
    index.add([500], replacement[2])  # one 1-d vector is accepted as a single row
    assert 500 in index.ids()
    assert len(index) == 201


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_removed_ids_are_never_returned(kind: str) -> None:
    vectors = clustered(500, DIM, seed=8)
    ids = make_ids(500, "sparse", seed=9)
    index = build(FACTORIES[kind], ids, vectors)
    gone = ids[:100]
    assert index.remove(np.concatenate([gone, gone[:3], [12345]])) == 100
    assert index.remove(gone) == 0
    assert len(index) == 400
    assert int(gone[0]) not in index.ids()
    assert np.array_equal(index.ids(), np.sort(ids[100:]))
    for q in vectors[:50]:
        hits = index.search(q, 20)
        assert len(hits) == 20
        assert not {h.id for h in hits} & set(gone.tolist())
    # Filtered: only removed ids allowed -> nothing; a mix -> exactly the live ones.
    assert index.search(vectors[0], 10, gone) == []
    mixed = index.search(vectors[0], 10, np.concatenate([gone[:5], ids[100:103]]))
    assert sorted(h.id for h in mixed) == sorted(ids[100:103].tolist())
    index.remove(ids)
    assert len(index) == 0
    assert index.search(vectors[0], 5) == []


@pytest.mark.parametrize("kind", ["exact", "hnsw", "hnsw-graph-filters"])
def test_ids_of_any_range_against_a_brute_force_model(kind: str) -> None:
    """Small ids first (the dense id table), then negative and huge ones (the switch to sorted
    arrays), upserts and removals across both; checked against a plain dict of vectors."""
    vectors = clustered(700, DIM, seed=22)
    index = FACTORIES[kind](DIM)
    model: dict[int, NDArray[np.float32]] = {}

    def add(ids: list[int], rows: NDArray[np.float32]) -> None:
        index.add(ids, rows)
        model.update(zip(ids, rows, strict=True))

    add(list(range(500)), vectors[:500])
    add([-5, 2**60, 7, 499], vectors[500:504])
    add(list(range(2**40, 2**40 + 100)), vectors[504:604])
    for gone in ([3, -5, 2**40 + 1], [2**60, 10**18]):
        index.remove(gone)
        for hit_id in gone:
            model.pop(hit_id, None)
    assert np.array_equal(index.ids(), np.array(sorted(model), dtype=np.int64))
    assert {7, 2**40} <= set(index.ids().tolist())
    assert -5 not in index.ids()
    ids = np.array(list(model), dtype=np.int64)
    matrix = np.stack(list(model.values()))
    rng = np.random.default_rng(23)
    for q in vectors[604:640]:
        allowed = rng.choice(ids, 80, replace=False)
        for subset in (None, allowed):
            keep = np.ones(ids.size, bool) if subset is None else np.isin(ids, subset)
            scores = matrix[keep] @ q
            order = np.lexsort((ids[keep], -scores))[:10]
            expected = [
                Hit(int(i), float(s)) for i, s in zip(ids[keep][order], scores[order], strict=True)
            ]
            assert_same_hits(expected, index.search(q, 10, subset), scorer(model, q))


def test_hnsw_compacts_when_tombstones_pass_the_fraction() -> None:
    vectors = clustered(1000, DIM, seed=10)
    ids = np.arange(1000, dtype=np.int64)
    index = HnswIndex(DIM, ef_search=256, compact_fraction=0.3)
    exact = ExactIndex(DIM)
    for target in (index, exact):
        target.add(ids, vectors)
        target.remove(ids[:200])
        target.add(ids[200:250], clustered(50, DIM, seed=11))  # upserts leave tombstones too
    assert index.tombstones == 250
    index.remove(ids[250:400])
    exact.remove(ids[250:400])
    assert index.tombstones == 0
    assert len(index) == len(exact) == 650
    assert np.array_equal(index.ids(), exact.ids())
    rows = dict(zip(ids.tolist(), vectors, strict=True))
    rows.update(zip(ids[200:250].tolist(), clustered(50, DIM, seed=11), strict=True))
    for q in clustered(20, DIM, seed=12):
        assert_same_hits(exact.search(q, 10), index.search(q, 10), scorer(rows, q))


@pytest.mark.parametrize("kind", ["exact", "hnsw", "hnsw-graph-filters"])
def test_equal_scores_are_ordered_by_id(kind: str) -> None:
    vectors = clustered(300, DIM, seed=13)
    same = vectors[0]
    index = build(FACTORIES[kind], np.arange(1000, 1300), vectors)
    index.add(np.array([9, 3, 7, 5]), np.stack([same] * 4))
    hits = index.search(same, 3)
    assert [h.id for h in hits] == [3, 5, 7]
    assert hits[0].score == hits[1].score == hits[2].score
    allowed = np.array([9, 7, 5, 3, 1000, 1001])
    assert [h.id for h in index.search(same, 3, allowed)] == [3, 5, 7]


def test_id_digest_depends_on_the_set_only() -> None:
    ids = np.arange(100)
    assert digest_ids(ids) == digest_ids(ids[::-1]) != digest_ids(ids[1:])
    assert digest_ids([]) == 0
    assert digest_ids([2**62, -1]) == digest_ids([-1, 2**62])


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_save_and_load_round_trip(kind: str, tmp_path: Path) -> None:
    vectors = clustered(800, DIM, seed=15)
    ids = make_ids(800, "sparse", seed=16)
    index = build(FACTORIES[kind], ids, vectors)
    index.remove(ids[:40])
    index.add(ids[40:60], clustered(20, DIM, seed=17))
    path = tmp_path / "sub" / "vectors.vfi"
    index.save(path)
    loaded = type(index).load(path, DIM)
    assert len(loaded) == len(index)
    assert np.array_equal(loaded.ids(), index.ids())
    queries = clustered(20, DIM, seed=18)
    allowed = ids[::7]
    for q in queries:
        assert loaded.search(q, 10) == index.search(q, 10)
        assert loaded.search(q, 10, allowed) == index.search(q, 10, allowed)
    assert type(load_index(path, DIM)) is type(index)
    if isinstance(index, HnswIndex):
        assert isinstance(loaded, HnswIndex)
        assert loaded.tombstones == index.tombstones
    # The loaded index keeps working: add, remove, save over the old file.
    loaded.add([1], vectors[0])
    loaded.remove(ids[100:110])
    loaded.save(path)
    assert np.array_equal(type(index).load(path, DIM).ids(), loaded.ids())
    assert [p.name for p in path.parent.iterdir()] == ["vectors.vfi"]


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_unusable_files_raise_load_errors(kind: str, tmp_path: Path) -> None:
    cls = type(FACTORIES[kind](DIM))
    path = tmp_path / "index.vfi"
    with pytest.raises(IndexMissingError):
        cls.load(path, DIM)
    index = build(FACTORIES[kind], np.arange(300), clustered(300, DIM, seed=19))
    index.save(path)
    good = path.read_bytes()
    with pytest.raises(IndexMismatchError):
        cls.load(path, DIM + 1)
    other = HnswIndex if cls is ExactIndex else ExactIndex
    with pytest.raises(IndexMismatchError):
        other.load(path, DIM)
    damaged = {  # name -> file content
        "truncated": good[: len(good) // 2],
        "tail cut": good[:-3],
        "bit flip": good[:1000] + bytes([good[1000] ^ 1]) + good[1001:],
        "garbage": os.urandom(4096),
        "empty": b"",
    }
    for name, content in damaged.items():
        broken = tmp_path / f"{name}.vfi"  # the name shows in a failure
        broken.write_bytes(content)
        with pytest.raises(IndexCorruptError):
            cls.load(broken, DIM)
        with pytest.raises(IndexLoadError):
            load_index(broken, DIM)


_SAVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np
    from viewfinder.index.hnsw import HnswIndex
    from viewfinder.index import IndexMissingError

    path, dim = Path(sys.argv[1]), 64
    try:
        index = HnswIndex.load(path, dim)
    except IndexMissingError:
        index = HnswIndex(dim)
    rng = np.random.default_rng(len(index))
    while True:
        # Every save holds ids 0 .. n - 1 with n = 20000 + 10 j. After the first big add,
        # saving is most of the loop, so most kills land in it.
        n = len(index)
        batch = 20000 if n == 0 else 10
        index.add(np.arange(n, n + batch), rng.standard_normal((batch, dim)))
        index.save(path)
        print(len(index), flush=True)
    """
)


def test_kill_during_save_leaves_the_old_or_the_new_index(tmp_path: Path) -> None:
    path = tmp_path / "index.vfi"
    rng = np.random.default_rng(20)
    interrupted_saves = 0
    for _ in range(4):
        with subprocess.Popen(
            [sys.executable, "-c", _SAVER, str(path)],
            stdout=subprocess.PIPE,
            text=True,
        ) as saver:
            assert saver.stdout is not None
            saved = [int(saver.stdout.readline())]  # wait for one complete save
            time.sleep(rng.uniform(0.05, 0.4))
            saver.send_signal(signal.SIGKILL)
            saver.wait()
            saved += [int(line) for line in saver.stdout.read().split()]
        interrupted_saves += any(tmp_path.glob(".index.*.tmp.vfi"))
        loaded = HnswIndex.load(path, 64)
        size = len(loaded)
        # The last reported save, or the one whose rename happened just before the kill.
        assert size in (saved[-1], saved[-1] + 10)
        assert np.array_equal(loaded.ids(), np.arange(size))
        assert loaded.search(np.ones(64), 3)
    # Most kills land inside a save (it is most of the loop); at least one must have.
    assert interrupted_saves >= 1
    HnswIndex.load(path, 64).save(path)  # a later save clears the dead savers' temporary files
    assert [p.name for p in tmp_path.iterdir()] == ["index.vfi"]


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_searches_run_while_another_thread_writes(kind: str) -> None:
    vectors = clustered(2000, DIM, seed=21)
    index = build(FACTORIES[kind], np.arange(1000), vectors[:1000])
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                q = vectors[rng.integers(0, 2000)]
                allowed = None if rng.random() < 0.5 else rng.choice(2000, 200, replace=False)
                hits = index.search(q, 10, allowed)
                assert len(hits) <= 10
                assert allowed is not None or len(hits) == 10
                assert all(0 <= h.id < 2000 for h in hits)
                assert_hits_sorted(hits)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(3)]
    for thread in threads:
        thread.start()
    for start in range(1000, 2000, 50):
        index.add(np.arange(start, start + 50), vectors[start : start + 50])
        index.remove(np.arange(start - 1000, start - 980))
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(index) == 1000 + 1000 - 400


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_invalid_input_is_rejected(kind: str) -> None:
    index = FACTORIES[kind](DIM)
    with pytest.raises(ValueError, match="shape"):
        index.add([1], np.ones((1, DIM + 1)))
    with pytest.raises(ValueError, match="non-zero"):
        index.add([1], np.zeros((1, DIM)))
    with pytest.raises(ValueError, match="2 ids for 1 vectors"):
        index.add([1, 2], np.ones((1, DIM)))
    with pytest.raises(ValueError, match="integers"):
        index.add([1.5], np.ones((1, DIM)))
    index.add([1], np.ones((1, DIM)))
    with pytest.raises(ValueError, match="k must be"):
        index.search(np.ones(DIM), 0)
    with pytest.raises(ValueError, match="one query"):
        index.search(np.ones((2, DIM)), 1)
    assert len(index) == 1


def test_hnsw_and_exact_agree_on_clip_embeddings_of_the_test_photos(
    tiny_models: dict[str, Path],
) -> None:
    """The same neighbours from both indexes on CLIP embeddings (the tiny checkpoint's) of every
    photo in ../shared/data, unfiltered and with a folder-like filter."""
    from PIL import Image, ImageOps

    from tests.conftest import SHARED_DATA
    from viewfinder.index import ExactIndex
    from viewfinder.index.hnsw import HnswIndex
    from viewfinder.models.clip import ClipImageEncoder

    if not SHARED_DATA.is_dir():
        pytest.skip("../shared is absent")
    paths = sorted(
        p for p in SHARED_DATA.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    )
    encoder = ClipImageEncoder(tiny_models["clip"], "cpu", FP32)
    images = [ImageOps.exif_transpose(Image.open(p)).convert("RGB") for p in paths]
    vectors = np.stack(encoder.forward([encoder.preprocess(im) for im in images]))
    ids = np.arange(1, len(paths) + 1, dtype=np.int64) * 7
    exact, hnsw = ExactIndex(vectors.shape[1]), HnswIndex(vectors.shape[1])
    exact.add(ids, vectors)
    hnsw.add(ids, vectors)
    allowed = ids[np.array(["faces" in str(p) for p in paths])]
    for query in vectors[:: max(1, len(vectors) // 25)]:
        for subset in (None, allowed):
            want = exact.search(query, 10, subset)
            got = hnsw.search(query, 10, subset)
            assert [h.id for h in got] == [h.id for h in want]
            assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)
