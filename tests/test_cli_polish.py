"""The command line as a person meets it: ``index`` on a real folder (photos beside a README and a
CSV) prints one summary line for the non-images and progress for each long step, finds and
organises faces (or says in one line why not); ``--version``; ``analyze --list-operations``;
``models list`` in words; help text on every option of every command; the progress printer's
own arithmetic."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import SHARED_DATA, SHARED_MODELS, make_settings
from viewfinder.analysis.operations import OPERATIONS
from viewfinder.cli.main import app
from viewfinder.cli.progress import Progress, duration
from viewfinder.container import Services
from viewfinder.db import faces as face_repo
from viewfinder.imaging.sniff import is_not_an_image
from viewfinder.library.ingest import NOT_AN_IMAGE

PHOTOS = SHARED_DATA / "faces_face_recognition"
DETECTOR = SHARED_MODELS / "yunet" / "face_detection_yunet_opencv_zoo.onnx"
RECOGNIZER = SHARED_MODELS / "mobilefacenet" / "mobilefacenet.onnx"


def cli_env(tmp_path: Path, tiny_models: dict[str, Path], **extra: str) -> dict[str, str]:
    """A subprocess's environment: tiny checkpoints, offline, and no progress-bar setting of
    its own (the CLI must quiet the libraries itself)."""
    settings = make_settings(tmp_path, tiny_models)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_PROGRESS_BARS",)}
    env["VIEWFINDER_OFFLINE"] = "1"
    for name in ("data_dir", "clip_model", "dinov2_model", "dinov3_model", "caption_model"):
        env[f"VIEWFINDER_{name.upper()}"] = str(getattr(settings, name))
    env.update(extra)
    return env


def viewfinder(
    *args: str, env: dict[str, str], timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """The real command, in its own process, with stdout and stderr piped (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "viewfinder", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def photo_folder(root: Path) -> Path:
    """Three photos (one without a file name ending), a README, a CSV, and a broken JPEG."""
    folder = root / "photos"
    (folder / "trips").mkdir(parents=True)
    Image.new("RGB", (64, 48), (200, 30, 30)).save(folder / "red.jpg", quality=90)
    Image.new("RGB", (48, 64), (30, 200, 30)).save(folder / "trips" / "green.png")
    Image.new("RGB", (40, 40), (30, 30, 200)).save(folder / "trips" / "blue_no_suffix", "PNG")
    (folder / "README").write_text("# Holiday photos\nTaken in 2024.\n")
    (folder / "trips" / "places.csv").write_text("file,place\nred.jpg,Lisbon\n")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return folder


def test_index_skips_non_images_quietly_and_shows_progress(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    folder = photo_folder(tmp_path)
    # No face models: the recogniser is a path that does not exist.
    env = cli_env(
        tmp_path, tiny_models, VIEWFINDER_FACE_RECOGNIZER_MODEL=str(tmp_path / "no-model.onnx")
    )
    result = viewfinder("index", str(folder), env=env)
    assert result.returncode == 0, result.stderr
    out, err = result.stdout.splitlines(), result.stderr.splitlines()

    assert "3 new, 0 already stored, 1 skipped" in out
    # The non-images: one line, at the end, naming them; never a decode error for them.
    summary = [line for line in out if "not images" in line]
    assert summary == ["skipped 2 files that are not images (README, trips/places.csv)"]
    assert out[-1] == summary[0]
    assert not [line for line in err if "README" in line or "places.csv" in line]
    # The broken JPEG is a real problem: named, with the decoder's reason.
    assert [line for line in err if line.startswith("skipped ")] == [
        next(line for line in err if line.startswith("skipped broken.jpg: "))
    ]
    # Progress of each step, as plain lines (stderr is a pipe): count, time, rate.
    assert any(re.fullmatch(r"copy in: 6/6 files in \d+:\d\d(, [\d.]+ files/s)?", s) for s in err)
    assert any(re.fullmatch(r"embed: 3/3 images in \d+:\d\d, [\d.]+ images/s", s) for s in err)
    assert "3 images indexed" in out
    # Faces: one plain line saying they were not processed, and why.
    faces = [line for line in err if "faces" in line]
    assert len(faces) == 1, err
    assert faces[0].startswith("faces not processed: no face models: ")
    recognizer = f"VIEWFINDER_FACE_RECOGNIZER_MODEL={tmp_path / 'no-model.onnx'} does not exist"
    assert recognizer in faces[0]
    # Nothing but these lines: no libraries' bars, no carriage returns, no warnings.
    assert "\r" not in result.stderr
    assert "Loading weights" not in result.stderr
    assert "WARN" not in result.stderr.upper()

    again = viewfinder("index", str(folder), "--no-wait", env=env)
    assert again.returncode == 0, again.stderr
    assert "0 new, 3 already stored, 1 skipped" in again.stdout
    assert "embed:" not in again.stderr  # nothing to do: no progress line
    assert "faces" not in again.stderr  # --no-wait: nothing processed, nothing to explain


def test_the_import_report_keeps_every_skipped_file_with_its_reason(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    """The API's import job reports the same FolderReport: every skipped file stays listed, the
    non-images with their own reason, the broken image with the decoder's."""
    folder = photo_folder(tmp_path)
    services = Services.build(make_settings(tmp_path, tiny_models), with_library=True)
    try:
        report = services.require_library().ingest.ingest_folder(folder)
    finally:
        services.close()
    assert (report.created, report.existing) == (3, 0)
    reasons = dict(report.skipped)
    assert set(reasons) == {"README", "trips/places.csv", "broken.jpg"}
    assert reasons["README"] == reasons["trips/places.csv"] == NOT_AN_IMAGE
    assert "image" in reasons["broken.jpg"]
    assert reasons["broken.jpg"] != NOT_AN_IMAGE
    assert report.not_images == ["README", "trips/places.csv"]
    assert [path for path, _ in report.problems] == ["broken.jpg"]


@pytest.mark.shared
@pytest.mark.skipif(
    not (PHOTOS.is_dir() and DETECTOR.is_file() and RECOGNIZER.is_file()),
    reason="../shared (faces_face_recognition photos, YuNet, MobileFaceNet) is absent",
)
def test_index_finds_and_organises_faces(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    folder = tmp_path / "faces"
    folder.mkdir()
    # Three photos each of two people, and the set's own README and identity CSV.
    names = [
        "examples__knn_examples__train__kit_harington__john1.jpeg",
        "examples__knn_examples__train__kit_harington__john2.jpeg",
        "examples__knn_examples__test__johnsnow_test1.jpg",
        "examples__knn_examples__train__alex_lacamoire__img1.jpg",
        "examples__knn_examples__test__alex_lacamoire1.jpg",
        "examples__alex-lacamoire.png",
    ]
    for name in names:
        shutil.copy(PHOTOS / name, folder / name)
    non_images = sorted(p.name for p in PHOTOS.iterdir() if p.suffix in (".txt", ".csv"))
    assert non_images, "the shared set has its README and identity mapping"
    for name in non_images:
        shutil.copy(PHOTOS / name, folder / name)
    env = cli_env(
        tmp_path,
        tiny_models,
        VIEWFINDER_YUNET_MODEL=str(DETECTOR),
        VIEWFINDER_FACE_RECOGNIZER_MODEL=str(RECOGNIZER),
        VIEWFINDER_FACE_UNKNOWN_MIN_CLUSTER_SIZE="2",
    )
    result = viewfinder("index", str(folder), env=env)
    assert result.returncode == 0, result.stderr
    assert "6 new, 0 already stored, 0 skipped" in result.stdout
    assert any(
        re.fullmatch(r"faces: 6/6 images in \d+:\d\d, [\d.]+ images/s", line)
        for line in result.stderr.splitlines()
    ), result.stderr
    organised = re.search(
        r"^organised (\d+) faces: 0 matched to 0 named people, (\d+) unnamed groups$",
        result.stdout,
        re.MULTILINE,
    )
    assert organised, result.stdout
    assert int(organised[1]) == 6
    assert f"skipped {len(non_images)} files that are not images" in result.stdout
    assert "WARN" not in result.stderr.upper()

    # What the command reported is what the library holds: six faces, grouped by person.
    settings = make_settings(
        tmp_path, tiny_models, yunet_model=str(DETECTOR), face_recognizer_model=str(RECOGNIZER)
    )
    services = Services.build(settings, with_library=True)
    try:
        library = services.require_library()
        groups = library.people.clusters()
        with library.sessions() as s:
            assert face_repo.count_faces(s) == 6
    finally:
        services.close()
    assert len(groups) == int(organised[2]) >= 1

    # --no-faces on a new photo: it is left for later (a server or `faces backfill`).
    shutil.copy(PHOTOS / "examples__biden.jpg", folder / "biden.jpg")
    later = viewfinder("index", str(folder), "--no-faces", env=env)
    assert later.returncode == 0, later.stderr
    assert "1 new, 6 already stored" in later.stdout
    assert "faces" not in later.stderr
    assert "organised" not in later.stdout


def test_version_is_the_package_version(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    result = viewfinder("--version", env=cli_env(tmp_path, tiny_models))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"viewfinder {version('viewfinder')}\n"


def test_analyze_lists_the_operations_without_an_image() -> None:
    result = CliRunner().invoke(app, ["analyze", "--list-operations"])
    assert result.exit_code == 0, result.output
    blocks = {b.split("\n", 1)[0]: b for b in re.split(r"\n(?=\S)", result.stdout)}
    for op, spec in OPERATIONS.items():
        block = blocks[op.value]
        assert spec.description in block
        assert f"{spec.default_target.value} (default)" in block
        for target in spec.allowed_targets:
            assert target.value in block
    assert "collection_id" in blocks["classify"]
    assert "max_length" in blocks["describe_image"]
    assert "face_context" in result.stdout
    # Without --list-operations an image is still required.
    assert CliRunner().invoke(app, ["analyze"]).exit_code == 2


def test_models_list_says_what_is_missing_in_words(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    settings = make_settings(tmp_path, tiny_models)
    local = {
        f"VIEWFINDER_{name.upper()}": str(getattr(settings, name))
        for name in (
            "clip_model",
            "dinov2_model",
            "dinov3_model",
            "caption_model",
            "person_detector_model",
            "object_detector_model",
            "yunet_model",
            "face_recognizer_model",
        )
    }
    runner = CliRunner()
    env = {**local, "VIEWFINDER_OFFLINE": "1", "VIEWFINDER_DATA_DIR": str(tmp_path / "data")}
    missing = {
        **env,
        "VIEWFINDER_DINOV2_MODEL": str(tmp_path / "nowhere"),
        "VIEWFINDER_CAPTION_MODEL": "Salesforce/blip-image-captioning-large",
    }
    listed = runner.invoke(app, ["models", "list"], env=missing)
    assert listed.exit_code == 0, listed.output
    text = listed.stdout
    assert ": -" not in text
    assert "missing (run" not in text
    assert "not downloaded: caption (VIEWFINDER_OFFLINE is set: unset it for " in text
    assert "`viewfinder models pull caption`" in text
    assert "missing: dinov2 (its path does not exist: fix the setting shown above)" in text
    assert "all " not in text

    if all(Path(v).exists() for v in local.values()):  # ../shared's detectors present
        complete = runner.invoke(app, ["models", "list"], env=env)
        assert complete.exit_code == 0, complete.output
        assert complete.stdout.splitlines()[-1] == "all 10 models are available"
        assert "missing" not in complete.stdout
        assert "not downloaded" not in complete.stdout


def _commands(command: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_every_command_and_option_has_help_text() -> None:
    commands = _commands(typer.main.get_command(app), ("viewfinder",))
    assert len(commands) >= 25  # the groups and their commands, all walked
    undocumented = [
        f"{' '.join(path)} {param.name}"
        for path, command in commands
        for param in command.params
        if not (getattr(param, "help", None) or "").strip()
    ]
    assert undocumented == []
    assert [" ".join(p) for p, c in commands if not (c.help or "").strip()] == []


class Clock:
    """Seconds set by the test: the progress printer's arithmetic, exactly."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_counts_rate_and_time_left_as_plain_lines() -> None:
    clock, out = Clock(), io.StringIO()
    with Progress("embed", unit="images", stream=out, every_s=5.0, clock=clock) as bar:
        bar.remaining(40)  # the first count fixes the total
        clock.now += 2
        bar.remaining(36)  # within 5 s of the start: no line yet
        clock.now += 8
        bar.remaining(20)  # 20 done in 10 s
        clock.now += 10
        bar.remaining(0)
    assert out.getvalue().splitlines() == [
        "embed: 20/40 images (50%), 2.0 images/s, 0:10 left",
        "embed: 40/40 images in 0:20, 2.0 images/s",
    ]
    assert "\r" not in out.getvalue()


def test_progress_writes_nothing_when_there_is_nothing_to_do() -> None:
    out = io.StringIO()
    with Progress("faces", 0, stream=out) as bar:
        bar.remaining(0)
    assert out.getvalue() == ""


def test_progress_grows_its_total_and_marks_an_interruption() -> None:
    clock, out = Clock(), io.StringIO()
    bar = Progress("copy in", 2, unit="files", stream=out, every_s=0, clock=clock)
    clock.now += 1
    bar.remaining(3)  # more work appeared than the total said
    clock.now += 1
    bar.advance()
    with pytest.raises(KeyboardInterrupt), bar:
        raise KeyboardInterrupt
    lines = out.getvalue().splitlines()
    assert lines[0] == "copy in: 0/3 files (0%), 0:01 elapsed"
    assert lines[1] == "copy in: 1/3 files (33%), 0.5 files/s, 0:04 left"
    assert lines[-1] == "copy in: 1/3 files in 0:02, 0.5 files/s (interrupted)"


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0:00"), (7.4, "0:07"), (750, "12:30"), (3723, "1:02:03")]
)
def test_durations_read_as_clock_times(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "ICO", "PPM", "AVIF"])
def test_every_accepted_format_passes_the_sniff_whatever_its_name(tmp_path: Path, fmt: str) -> None:
    """A photo saved without its name ending is never taken for a non-image: each format
    ``decode_image`` accepts, encoded by Pillow, passes ``is_not_an_image``."""
    path = tmp_path / "no_ending"
    try:
        Image.new("RGB", (16, 16), (1, 2, 3)).save(path, fmt)
    except (KeyError, OSError) as exc:  # a Pillow built without that encoder
        pytest.skip(f"Pillow cannot write {fmt}: {exc}")
    assert not is_not_an_image(path)
    for prose in ("P6 is not enough: this is prose", "BMW service history, 2019-2024"):
        text = tmp_path / "notes"
        text.write_text(prose)  # starts like a Netpbm or a BMP signature, and is neither
        assert is_not_an_image(text), prose
    assert not is_not_an_image(tmp_path / "missing.bin")  # the read reports it, not the sniff
