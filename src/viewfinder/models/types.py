"""Domain results of models: plain frozen dataclasses, coordinates in input-image pixels."""

from __future__ import annotations

from dataclasses import dataclass

BoxXYXY = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """One detected object. ``box`` is (xmin, ymin, xmax, ymax) in pixels of the input image;
    ``landmarks`` (faces only) are five (x, y) points: right eye, left eye, nose tip, right and
    left mouth corners, as seen by the viewer left to right being the subject's right first."""

    box: BoxXYXY
    score: float
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    def shifted(self, dx: float, dy: float) -> Detection:
        """The same detection in the coordinates of an image that contains this one at (dx, dy)."""
        x1, y1, x2, y2 = self.box
        marks = None
        if self.landmarks is not None:
            marks = tuple((x + dx, y + dy) for x, y in self.landmarks)
        return Detection((x1 + dx, y1 + dy, x2 + dx, y2 + dy), self.score, marks)


@dataclass(frozen=True)
class LabeledDetection:
    """One object of a known class (a COCO label such as "dog"), ``box`` as in ``Detection``."""

    label: str
    box: BoxXYXY
    score: float
