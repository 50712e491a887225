"""Regions of one image for one request: the prominent person and face are detected at most once
and reused by every task that needs them; crops and their PNGs are made once per box."""

from __future__ import annotations

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
    """Answers "where is the person / face" for one image. The detections are made by the
    service for every image of a request at once (``person_to_detect`` / ``face_to_detect``
    say what to run, ``found_person`` / ``found_face`` hand back what the detector said), and
    every task that needs them reuses them. A detection that failed raises its error for each
    task that needs it."""

    def __init__(self, image: Image.Image) -> None:
        self.image = image
        self._person: tuple[Detection | None] | BaseException | None = None
        self._faces: dict[Target, Detection | BaseException | None] = {}
        self._crops: dict[tuple[int, ...], Image.Image] = {}
        self._pngs: dict[tuple[int, ...], str] = {}

    def found_person(self, detections: list[Detection] | BaseException) -> None:
        if isinstance(detections, BaseException):
            self._person = detections
        else:
            self._person = (most_prominent(detections),)

    def face_to_detect(self, context: Target) -> Region:
        """Where the face of ``context`` is searched: inside the prominent person (the whole
        image when there is none, like every person target) or in the whole image."""
        person = self.person() if context is Target.PROMINENT_PERSON else None
        return Region(self.image, None) if person is None else self.region_for_box(person.box)

    def found_face(
        self, context: Target, where: Region | None, detections: list[Detection] | BaseException
    ) -> None:
        """``where``: the region ``face_to_detect`` gave (None when that raised, and
        ``detections`` is its error)."""
        if isinstance(detections, BaseException):
            self._faces[context] = detections
            return
        found = most_prominent(detections)
        if found is not None and where is not None and where.bbox is not None:
            found = found.shifted(where.bbox[0], where.bbox[1])
        self._faces[context] = found

    def person(self) -> Detection | None:
        if self._person is None:
            raise RuntimeError("the person detection was not run for this image")
        if isinstance(self._person, BaseException):
            raise self._person
        return self._person[0]

    def face(self, context: Target) -> Detection | None:
        if context not in self._faces:
            raise RuntimeError(f"the face detection in {context.value} was not run")
        found = self._faces[context]
        if isinstance(found, BaseException):
            raise found
        return found

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
