"""Objects and pets in library assets: the ``objects`` task kind runs the YOLOX COCO detector over
each image and stores what it finds above ``VIEWFINDER_OBJECT_MIN_SCORE`` as ``AssetObject``
rows (label, score, box in the original's pixels), where the search filter ``objects`` and the
asset JSON find them; plus the labels a search may name, and the labels the library has."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import objects as objects_repo
from viewfinder.db.models import Asset
from viewfinder.errors import InvalidInputError
from viewfinder.library.processing import run_isolated
from viewfinder.models.types import LabeledDetection
from viewfinder.models.yolox import COCO_LABELS
from viewfinder.runtime.pool import ModelPool

OBJECTS_TASK = "objects"
OBJECT_DETECTOR = "object_detector"
# YOLOX-s takes 640 pixels: the original is decoded no smaller on its shortest side (a
# 12-megapixel JPEG at a quarter scale), and the boxes are scaled back to the original's pixels.
DETECT_MIN_SIDE = 640
MAX_LABELS_PER_SEARCH = 10

_LABELS = frozenset(COCO_LABELS)
# Other names people type for a COCO label (Pascal VOC's among them).
ALIASES = {
    "people": "person",
    "persons": "person",
    "man": "person",
    "woman": "person",
    "child": "person",
    "children": "person",
    "puppy": "dog",
    "puppies": "dog",
    "kitten": "cat",
    "kittens": "cat",
    "bike": "bicycle",
    "motorbike": "motorcycle",
    "aeroplane": "airplane",
    "plane": "airplane",
    "sofa": "couch",
    "television": "tv",
    "tvmonitor": "tv",
    "tv monitor": "tv",
    "phone": "cell phone",
    "cellphone": "cell phone",
    "mobile phone": "cell phone",
    "table": "dining table",
    "diningtable": "dining table",
    "pottedplant": "potted plant",
    "plant": "potted plant",
    "ball": "sports ball",
    "mice": "mouse",
    "knives": "knife",
    "hair dryer": "hair drier",
    "doughnut": "donut",
}
_SPACES = re.compile(r"[\s_-]+")


class ObjectProcessor:
    """TaskProcessor of the ``objects`` kind: the result per asset is ``(decoded width, decoded
    height, detections)``; ``store`` replaces the asset's objects with them."""

    kind = OBJECTS_TASK
    min_side: int | None = DETECT_MIN_SIDE

    def __init__(self, pool: ModelPool) -> None:
        self._pool = pool

    def compute(self, images: dict[int, Image.Image]) -> dict[int, Any]:
        ids = list(images)
        with self._pool.lease(OBJECT_DETECTOR) as detector:
            found = run_isolated(detector, [images[i] for i in ids])
        return {
            i: out if isinstance(out, Exception) else (images[i].width, images[i].height, out)
            for i, out in zip(ids, found, strict=True)
        }

    def store(self, session: Session, asset_id: int, result: Any) -> None:
        width, height, found = result
        asset = session.get(Asset, asset_id)
        if asset is None:
            return  # deleted meanwhile
        sx, sy = asset.width / max(1, width), asset.height / max(1, height)
        objects_repo.replace_objects(
            session,
            asset_id,
            [
                LabeledDetection(d.label, (x1 * sx, y1 * sy, x2 * sx, y2 * sy), d.score)
                for d in found
                for x1, y1, x2, y2 in [d.box]
            ],
        )

    def after_commit(self, results: dict[int, Any]) -> None:
        return


def _singulars(word: str) -> list[str]:
    """What a plural ``word`` may be the plural of: horses -> horse, buses -> bus, ..."""
    forms = []
    if word.endswith("ies") and len(word) > 4:
        forms.append(word[:-3] + "y")
    if word.endswith("s"):
        forms.append(word[:-1])
    if word.endswith("es"):
        forms.append(word[:-2])
    return forms


def object_label(name: str) -> str | None:
    """The COCO label ``name`` means ("Dogs" -> "dog", "wine glasses" -> "wine glass",
    "sofa" -> "couch"); None when it means none."""
    text = _SPACES.sub(" ", name.strip().casefold())
    if text in _LABELS:
        return text
    if text in ALIASES:
        return ALIASES[text]
    head, _, last = text.rpartition(" ")
    for form in _singulars(last):
        singular = f"{head} {form}".strip()
        if singular in _LABELS:
            return singular
        if singular in ALIASES:
            return ALIASES[singular]
    return None


def object_labels(names: Iterable[str]) -> tuple[str, ...]:
    """The labels a search requires, each once, in the order given; InvalidInputError (a 400)
    naming the close matches, or every valid label, for a name that is no COCO label."""
    names = list(names)
    if len(names) > MAX_LABELS_PER_SEARCH:
        raise InvalidInputError(f"at most {MAX_LABELS_PER_SEARCH} objects, got {len(names)}")
    labels: list[str] = []
    for name in names:
        label = object_label(name)
        if label is None:
            raise InvalidInputError(unknown_label_message(name))
        labels.append(label)
    return tuple(dict.fromkeys(labels))


def unknown_label_message(name: str) -> str:
    close = difflib.get_close_matches(name.strip().casefold(), COCO_LABELS, n=3, cutoff=0.6)
    if close:
        return f"unknown object {name!r}: did you mean {', '.join(repr(c) for c in close)}?"
    return f"unknown object {name!r}; the objects are the 80 COCO labels: {', '.join(COCO_LABELS)}"


class ObjectService:
    """The labels found in the library, for a filter's choices."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def label_counts(self) -> list[tuple[str, int]]:
        with self._sessions() as session:
            return objects_repo.label_counts(session)
