"""A face quality score in [0, 1]: will this face give a trustworthy embedding?

Four factors, each mapped to [0, 1], combined by a geometric mean so that one very bad factor
(a 12 px face, a profile, a blurred crop) pulls the score down whatever the others say:

- size: the shorter side of the detection box; recognisers see 112 px crops, so faces much
  smaller than that carry little identity (0 at ``SIZE_FLOOR_PX``, 1 from ``SIZE_FULL_PX``).
- detector score: the detector's own confidence.
- sharpness: variance of the Laplacian of the aligned grey crop, squashed by v / (v + ref).
  On the ../shared photos sharp crops measure 200-5000 and a Gaussian blur of sigma 2 brings
  them to 5-20, so ``SHARPNESS_REF`` = 100 places blurred faces near 0.1 and sharp ones > 0.6.
- pose: where the nose tip sits between the eyes (0.5 = frontal, 0 or 1 = profile), and that
  it lies below the eyes and above the mouth (pitch, upside-down or broken landmarks).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from viewfinder.models.types import Detection

SIZE_FLOOR_PX = 16.0
SIZE_FULL_PX = 80.0
SHARPNESS_REF = 100.0
DEFAULT_MIN_SIZE_PX = 32.0
DEFAULT_MIN_QUALITY = 0.4


@dataclass(frozen=True)
class FaceQuality:
    """The factors and their combination; ``size_px`` is the shorter side of the box."""

    size_px: float
    size: float
    detector: float
    sharpness: float
    pose: float

    @property
    def score(self) -> float:
        factors = np.array([self.size, self.detector, self.sharpness, self.pose])
        return float(np.prod(np.clip(factors, 0.0, 1.0)) ** (1.0 / len(factors)))


def size_score(size_px: float) -> float:
    return float(np.clip((size_px - SIZE_FLOOR_PX) / (SIZE_FULL_PX - SIZE_FLOOR_PX), 0.0, 1.0))


def laplacian_variance(aligned: NDArray[np.uint8]) -> float:
    grey = cv2.cvtColor(np.ascontiguousarray(aligned), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def sharpness_score(aligned: NDArray[np.uint8]) -> float:
    variance = laplacian_variance(aligned)
    return variance / (variance + SHARPNESS_REF)


def pose_score(landmarks: NDArray[np.floating] | tuple[tuple[float, float], ...]) -> float:
    """1 for a frontal face, falling to 0 for a profile or implausible landmarks.

    Landmarks are in ``Detection.landmarks`` order. The measure works in the frame of the
    eye line, so an in-plane tilt (which alignment undoes) costs nothing.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    eye_a, eye_b, nose = points[0], points[1], points[2]
    mouth_mid = (points[3] + points[4]) / 2
    axis = eye_b - eye_a
    eye_distance = float(np.linalg.norm(axis))
    if eye_distance == 0.0:
        return 0.0
    along = axis / eye_distance
    across = np.array([-along[1], along[0]])  # points "down" the face for a non-mirrored face
    # Yaw: the nose's position between the eyes, 0.5 when the face looks at the camera.
    yaw_offset = float((nose - eye_a) @ along) / eye_distance - 0.5
    yaw = max(0.0, 1.0 - (yaw_offset / 0.5) ** 2)
    # Pitch: the nose should sit between the eye line and the mouth line.
    nose_depth = float((nose - eye_a) @ across)
    mouth_depth = float((mouth_mid - eye_a) @ across)
    if mouth_depth <= 0.0 or not 0.0 < nose_depth < mouth_depth:
        return 0.0
    pitch_offset = nose_depth / mouth_depth - 0.5
    pitch = max(0.0, 1.0 - (pitch_offset / 0.5) ** 2)
    return float(np.sqrt(yaw * pitch))


def assess_face(detection: Detection, aligned: NDArray[np.uint8]) -> FaceQuality:
    """Quality of one detected face and its aligned crop (``faces.align.align_face``)."""
    x1, y1, x2, y2 = detection.box
    size_px = float(min(x2 - x1, y2 - y1))
    pose = pose_score(detection.landmarks) if detection.landmarks is not None else 0.0
    return FaceQuality(
        size_px=size_px,
        size=size_score(size_px),
        detector=float(np.clip(detection.score, 0.0, 1.0)),
        sharpness=sharpness_score(aligned),
        pose=pose,
    )


def is_clusterable(
    quality: FaceQuality,
    min_size_px: float = DEFAULT_MIN_SIZE_PX,
    min_quality: float = DEFAULT_MIN_QUALITY,
) -> bool:
    """Whether a face is good enough to be grouped: tiny or poor faces are kept (searchable,
    labellable by hand) but left out of clustering, where they chain unrelated people."""
    return quality.size_px >= min_size_px and quality.score >= min_quality
