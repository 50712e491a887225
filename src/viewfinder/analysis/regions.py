"""Regions of one image for one request: the prominent person and face are detected at most once
and reused by every task that needs them; crops and their PNGs are made once per box."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from viewfinder.analysis.operations import Target
from viewfinder.imaging.crop import crop, png_base64
from viewfinder.models.types import Detection

Detector = Callable[[Image.Image], list[Detection]]


class SkipTaskError(Exception):
    """The task cannot apply to this image (no face found, no classifier); reported as skipped."""


@dataclass(frozen=True)
class Region:
    """The pixels a task works on; ``bbox`` is None when that is the whole image."""

    image: Image.Image
    bbox: list[int] | None


def most_prominent(detections: list[Detection]) -> Detection | None:
    """The largest detection (ties: the more confident): what a viewer sees as the subject."""
    if not detections:
        return None
    return max(detections, key=lambda d: (d.area, d.score))


class RegionResolver:
    """Answers "where is the person / face" for one image, detecting each at most once."""

    def __init__(
        self,
        image: Image.Image,
        detect_persons: Detector,
        detect_faces: Detector,
        timings: dict[str, float],
    ) -> None:
        self.image = image
        self._detect_persons = detect_persons
        self._detect_faces = detect_faces
        self._timings = timings
        self._person: tuple[Detection | None] | None = None
        self._faces: dict[Target, Detection | None] = {}
        self._crops: dict[tuple[int, ...], Image.Image] = {}
        self._pngs: dict[tuple[int, ...], str] = {}

    def person(self) -> Detection | None:
        if self._person is None:
            started = time.perf_counter()
            found = most_prominent(self._detect_persons(self.image))
            self._timings["detect_person"] = time.perf_counter() - started
            self._person = (found,)
        return self._person[0]

    def face(self, context: Target) -> Detection | None:
        """The prominent face, searched inside the prominent person (falling back to the whole
        image when there is no person, like every person target) or in the whole image."""
        if context not in self._faces:
            person = self.person() if context is Target.PROMINENT_PERSON else None
            started = time.perf_counter()
            if person is None:
                found = most_prominent(self._detect_faces(self.image))
            else:
                region = self.region_for_box(person.box)
                assert region.bbox is not None
                in_crop = most_prominent(self._detect_faces(region.image))
                found = in_crop.shifted(region.bbox[0], region.bbox[1]) if in_crop else None
            key = f"detect_face_in_{context.value}"
            self._timings[key] = self._timings.get(key, 0.0) + time.perf_counter() - started
            self._faces[context] = found
        return self._faces[context]

    def region(self, target: Target, face_context: Target) -> Region:
        if target is Target.WHOLE_IMAGE:
            return Region(self.image, None)
        if target is Target.PROMINENT_PERSON:
            person = self.person()
            return self.region_for_box(person.box) if person else Region(self.image, None)
        face = self.face(face_context)
        if face is None:
            where = (
                "the prominent person" if face_context is Target.PROMINENT_PERSON else "the image"
            )
            raise SkipTaskError(f"No face found in {where}; target 'prominent_face' requires one.")
        return self.region_for_box(face.box)

    def region_for_box(self, box: tuple[float, float, float, float]) -> Region:
        image, used = crop(self.image, box)
        key = tuple(used)
        image = self._crops.setdefault(key, image)
        return Region(image, used)

    def png(self, region: Region) -> str | None:
        if region.bbox is None:
            return None
        key = tuple(region.bbox)
        if key not in self._pngs:
            self._pngs[key] = png_base64(region.image)
        return self._pngs[key]
