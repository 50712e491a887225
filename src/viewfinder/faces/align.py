"""Face alignment: a 5-point similarity transform onto the ArcFace 112x112 template.

ArcFace-family recognisers (MobileFaceNet, SFace, ArcFace) were trained on crops made exactly
this way, so an embedding is only meaningful for a face warped onto this template.

The template lists, in order, the eye, nose and mouth corner that appear on the image's LEFT
first: (38.3, 51.7) is the eye on the left of the crop, which is the subject's right eye. That
is the order of ``Detection.landmarks`` (right eye, left eye, nose, right and left mouth corner,
subject's right first), as produced by both our YuNet and MTCNN detectors.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

ALIGNED_SIZE = 112
ARCFACE_TEMPLATE: NDArray[np.float64] = np.array(
    [
        [38.2946, 51.6963],  # eye on the image's left (subject's right eye)
        [73.5318, 51.5014],  # eye on the image's right (subject's left eye)
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # mouth corner on the image's left
        [70.7299, 92.2041],  # mouth corner on the image's right
    ],
    dtype=np.float64,
)


def similarity_transform(
    source: NDArray[np.floating], target: NDArray[np.floating]
) -> NDArray[np.float64]:
    """The 2x3 matrix of the rotation + uniform scale + translation that maps ``source``
    points onto ``target`` points with the least squared error (Umeyama 1991).

    A similarity (not a full affine) keeps the face's proportions: a free affine would also
    shear and stretch faces towards the template and erase identity cues.
    """
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching (n>=2, 2) point sets, got {src.shape}, {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_centered, dst_centered = src - src_mean, dst - dst_mean
    covariance = dst_centered.T @ src_centered / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    # A reflection would mirror the face; flip the weakest axis instead (Umeyama's correction).
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    src_variance = float((src_centered**2).sum() / len(src))
    if src_variance == 0.0:
        raise ValueError("landmarks are all the same point; cannot align")
    scale = float((singular * sign).sum() / src_variance)
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def template_for(size: int) -> NDArray[np.float64]:
    """The ArcFace template scaled to a square crop of ``size`` pixels."""
    return ARCFACE_TEMPLATE * (size / ALIGNED_SIZE)


def as_rgb_array(image: Image.Image | NDArray[np.uint8]) -> NDArray[np.uint8]:
    if isinstance(image, Image.Image):
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got {array.dtype} {array.shape}")
    return array


def align_face(
    image: Image.Image | NDArray[np.uint8],
    landmarks: NDArray[np.floating] | tuple[tuple[float, float], ...],
    size: int = ALIGNED_SIZE,
) -> NDArray[np.uint8]:
    """The face warped onto the ArcFace template: a ``size`` x ``size`` x 3 RGB uint8 crop.

    ``landmarks`` are five (x, y) points in ``image`` pixels, in ``Detection.landmarks`` order.
    Pixels outside the image are black, as in the recognisers' training crops.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"need five (x, y) landmarks, got shape {points.shape}")
    matrix = similarity_transform(points, template_for(size))
    warped = cv2.warpAffine(
        as_rgb_array(image),
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    return np.asarray(warped, dtype=np.uint8)


def transform_points(
    matrix: NDArray[np.float64], points: NDArray[np.floating]
) -> NDArray[np.float64]:
    """Apply a 2x3 affine matrix to (n, 2) points."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]
