"""The library commands end to end in one library: ``db upgrade``, ``index --no-faces``
(twice), ``faces backfill``, ``stats``, ``cluster-dual``, ``assign`` and ``train``, with real
face models on photos of known people."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import SHARED_DATA, SHARED_MODELS, make_settings
from viewfinder.cli.main import app as cli
from viewfinder.container import Services
from viewfinder.db import faces as face_repo
from viewfinder.db.migrate import head_revision
from viewfinder.db.models import Asset

PHOTOS = SHARED_DATA / "faces_face_recognition"
RECOGNIZER = SHARED_MODELS / "mobilefacenet" / "mobilefacenet.onnx"
DETECTOR = SHARED_MODELS / "yunet" / "face_detection_yunet_opencv_zoo.onnx"
# Three single-face photos of each of two people: two are named, the third must be recognised.
PEOPLE = {
    "kit": [
        "examples__knn_examples__train__kit_harington__john1.jpeg",
        "examples__knn_examples__train__kit_harington__john2.jpeg",
        "examples__knn_examples__test__johnsnow_test1.jpg",
    ],
    "alex": [
        "examples__knn_examples__train__alex_lacamoire__img1.jpg",
        "examples__knn_examples__test__alex_lacamoire1.jpg",
        "examples__alex-lacamoire.png",
    ],
}

pytestmark = pytest.mark.skipif(
    not (PHOTOS.is_dir() and RECOGNIZER.is_file() and DETECTOR.is_file()),
    reason="../shared (faces_face_recognition photos, YuNet, MobileFaceNet) is absent",
)


def lines(output: str) -> dict[str, str]:
    """``key value`` lines as printed by the report commands."""
    return dict(line.split(None, 1) for line in output.splitlines() if line.strip())


def test_library_commands_end_to_end(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in (n for names in PEOPLE.values() for n in names):
        shutil.copy(PHOTOS / name, folder / name)
    settings = make_settings(
        tmp_path, tiny_models, face_recognizer_model=str(RECOGNIZER), yunet_model=str(DETECTOR)
    )
    env = {
        "VIEWFINDER_DATA_DIR": str(settings.data_dir),
        "VIEWFINDER_OFFLINE": "1",
        "VIEWFINDER_YUNET_MODEL": str(DETECTOR),
        "VIEWFINDER_FACE_RECOGNIZER_MODEL": str(RECOGNIZER),
        "VIEWFINDER_CLIP_MODEL": settings.clip_model,
    }
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.stdout if code == 0 else result.stderr

    assert run("db", "upgrade").strip() == f"database at revision {head_revision()}"
    assert "SQLite is migrated in place" in run("db", "upgrade", "--sql", code=1)
    # --no-faces leaves the faces to the backfill below (tests/test_cli_polish.py has index
    # finding them itself).
    indexed = run("index", str(folder), "--no-faces")
    assert "6 new, 0 already stored, 0 skipped" in indexed
    assert "6 images indexed" in indexed
    assert "faces" not in indexed
    assert "0 new, 6 already stored" in run("index", str(folder), "--no-wait")
    assert "is not a folder" in run("index", str(folder / "nope"), code=1)

    assert "training needs at least two people" in run("faces", "train", code=1)
    backfill = runner.invoke(cli, ["faces", "backfill"], env=env)
    assert backfill.exit_code == 0, backfill.output
    assert "6 processed, 0 failed; 6 faces" in backfill.stdout
    assert re.search(r"^faces: 6/6 images in \d+:\d\d, [\d.]+ images/s$", backfill.stderr, re.M)
    stats = lines(run("faces", "stats"))
    assert (stats["faces"], stats["people"], stats["assigned_manual"]) == ("6", "0", "0")
    assert "unknown clustering method 'kmeans'" in run(
        "faces", "cluster-dual", "--unknown-method", "kmeans", code=1
    )
    clustered = lines(run("faces", "cluster-dual", "--min-cluster-size", "2"))
    assert (clustered["faces"], clustered["known_people"], clustered["assigned"]) == ("6", "0", "0")

    services = Services.build(settings, with_library=True)
    try:
        library = services.require_library()
        with library.sessions() as s:
            ids = dict(s.execute(select(Asset.original_filename, Asset.id)).tuples().all())
            face_of = {
                name: face_repo.faces_of_asset(s, asset_id)[0].id for name, asset_id in ids.items()
            }
        for person, names in PEOPLE.items():
            for name in names[:2]:
                library.people.assign(face_of[name], None, person)
    finally:
        services.close()

    # Seed 001's default threshold (0.7) leaves one of the two unrecognised with MobileFaceNet;
    # the option is part of what is exercised here, precision is checked below.
    assigned = run("faces", "assign", "--person-threshold", "0.3")
    assert assigned.startswith("assigned 2 faces to 2 known people"), assigned
    services = Services.build(settings, with_library=True)
    try:
        with services.require_library().sessions() as s:
            for person, names in PEOPLE.items():
                face = face_repo.get_face(s, face_of[names[2]])
                assert face is not None
                assert face.person_source == "auto"
                named = face_repo.get_face(s, face_of[names[0]])
                assert named is not None
                assert face.person_id == named.person_id, person
    finally:
        services.close()
    stats = lines(run("faces", "stats"))
    assert (stats["people"], stats["assigned_manual"], stats["assigned_auto"]) == ("2", "4", "2")
    trained = lines(run("faces", "train", "--epochs", "2"))
    assert (trained["labelled_faces"], trained["people"]) == ("4", "2")
    assert trained["kept"] in ("True", "False")
