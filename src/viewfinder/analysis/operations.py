"""The operation registry: every analysis operation, its targets and its default, top to bottom.

``GET /available_operations/`` is rendered from this table, and the service validates tasks
against it, so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Target(StrEnum):
    WHOLE_IMAGE = "whole_image"
    PROMINENT_PERSON = "prominent_person"
    PROMINENT_FACE = "prominent_face"


class OperationType(StrEnum):
    DETECT_BOUNDING_BOX = "detect_bounding_box"
    EMBED_CLIP_VIT_B_32 = "embed_clip_vit_b_32"
    EMBED_DINO_V2 = "embed_dino_v2"
    EMBED_DINO_V3 = "embed_dino_v3"
    CLASSIFY = "classify"
    DESCRIBE_IMAGE = "describe_image"


# What an embedding task's ``params.model`` calls VIEWFINDER_CLIP_MODEL (the library's CLIP);
# VIEWFINDER_CLIP_MODELS names the others.
DEFAULT_CLIP = "default"

ALL_TARGETS = (Target.WHOLE_IMAGE, Target.PROMINENT_PERSON, Target.PROMINENT_FACE)
FACE_CONTEXTS = (Target.PROMINENT_PERSON, Target.WHOLE_IMAGE)


@dataclass(frozen=True)
class OperationSpec:
    description: str
    allowed_targets: tuple[Target, ...]
    default_target: Target
    # The pool model that computes the operation's data on a region (None: detection only).
    model: str | None
    # Its parameters besides ``target``: name -> what it takes (``viewfinder analyze
    # --list-operations`` prints them).
    params: tuple[tuple[str, str], ...] = ()


OPERATIONS: dict[OperationType, OperationSpec] = {
    OperationType.DETECT_BOUNDING_BOX: OperationSpec(
        "Detects a bounding box for a specified target.",
        (Target.PROMINENT_PERSON, Target.PROMINENT_FACE),
        Target.PROMINENT_PERSON,
        None,
    ),
    OperationType.EMBED_CLIP_VIT_B_32: OperationSpec(
        "Generates an embedding using the CLIP ViT-B/32 model.",
        ALL_TARGETS,
        Target.WHOLE_IMAGE,
        "clip_image",
        (
            (
                "model",
                f"a CLIP model by name: {DEFAULT_CLIP} (VIEWFINDER_CLIP_MODEL) or one of "
                "VIEWFINDER_CLIP_MODELS, as GET /available_operations/ lists them",
            ),
        ),
    ),
    OperationType.EMBED_DINO_V2: OperationSpec(
        "Generates a visual embedding using the DINOv2 model (composition, colour, texture).",
        ALL_TARGETS,
        Target.WHOLE_IMAGE,
        "dinov2",
    ),
    OperationType.EMBED_DINO_V3: OperationSpec(
        "Generates a visual embedding using the DINOv3 model.",
        ALL_TARGETS,
        Target.WHOLE_IMAGE,
        "dinov3",
    ),
    OperationType.CLASSIFY: OperationSpec(
        "Determines if an image region belongs to a specific collection using a binary classifier.",
        ALL_TARGETS,
        Target.WHOLE_IMAGE,
        None,  # the classifier names the embedding it was trained on
        (("collection_id", "required; the collection whose trained classifier decides"),),
    ),
    OperationType.DESCRIBE_IMAGE: OperationSpec(
        "Generates a text description of an image region using an image captioning model.",
        ALL_TARGETS,
        Target.WHOLE_IMAGE,
        "caption",
        (("max_length", "the longest caption in tokens, 1-512 (default 50)"),),
    ),
}

EMBEDDING_OPERATIONS = (
    OperationType.EMBED_CLIP_VIT_B_32,
    OperationType.EMBED_DINO_V2,
    OperationType.EMBED_DINO_V3,
)
