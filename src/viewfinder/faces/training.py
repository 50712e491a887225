"""A small projection head trained on labelled faces with a triplet loss.

The recogniser's embedding space is general; a user's library has a few dozen people seen
under its own lighting and cameras. A linear map (d -> out, then L2 normalisation), trained so
that each labelled face is closer to that person's faces than to anyone else's by ``margin``,
can sharpen that space for those people. It starts as the identity when out == d, so training
only has to learn a correction, and an untrained head changes nothing.

Whether it helps is measured, not assumed: ``train_and_evaluate`` holds out a share of the
labelled PHOTOS (all faces of a photo on one side, so no photo leaks), compares held-out pair
AUC in the original space and through the head, and sets ``keep`` only if the head wins by
``min_auc_gain``. The caller keeps the untrained space otherwise.

Heads are saved as safetensors (no pickle) with a format version and a content version.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from safetensors.numpy import load_file, save_file
from torch import nn

from viewfinder.faces.clustering import normalise_rows
from viewfinder.faces.evaluation import auc, pair_scores

HEAD_FORMAT = "viewfinder.face-projection-head"
HEAD_FORMAT_VERSION = "1"
DEFAULT_EPOCHS = 20  # FACE_TRAINING_EPOCHS (seed 001)
DEFAULT_MARGIN = 0.2  # FACE_TRIPLET_MARGIN (seed 001)
PERSONS_PER_BATCH = 8
FACES_PER_PERSON = 4


@dataclass(frozen=True)
class TrainedHead:
    """``apply(x) = normalise(x @ weight.T + bias)``. ``version`` names the embedding space
    it produces (a hash of the weights), so stored vectors can record which head made them."""

    weight: NDArray[np.float32]
    bias: NDArray[np.float32]
    info: Mapping[str, str] = field(default_factory=dict)

    @property
    def in_dim(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_dim(self) -> int:
        return int(self.weight.shape[0])

    @property
    def version(self) -> str:
        digest = hashlib.sha256(self.weight.tobytes() + self.bias.tobytes()).hexdigest()
        return f"head-{digest[:12]}"

    @classmethod
    def identity(cls, dim: int) -> TrainedHead:
        return cls(np.eye(dim, dtype=np.float32), np.zeros(dim, dtype=np.float32))

    def apply(self, embeddings: ArrayLike) -> NDArray[np.float32]:
        vectors = normalise_rows(embeddings).astype(np.float32)
        if vectors.shape[1] != self.in_dim:
            raise ValueError(f"head expects {self.in_dim}-d embeddings, got {vectors.shape[1]}")
        return normalise_rows(vectors @ self.weight.T + self.bias).astype(np.float32)

    def save(self, path: Path) -> None:
        metadata = {
            "format": HEAD_FORMAT,
            "format_version": HEAD_FORMAT_VERSION,
            "version": self.version,
            "info": json.dumps(dict(self.info), sort_keys=True),
        }
        save_file({"weight": self.weight, "bias": self.bias}, str(path), metadata=metadata)

    @classmethod
    def load(cls, path: Path) -> TrainedHead:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("format") != HEAD_FORMAT:
            raise ValueError(f"{path} is not a face projection head")
        if metadata.get("format_version") != HEAD_FORMAT_VERSION:
            raise ValueError(
                f"{path}: head format version {metadata.get('format_version')!r} is not "
                f"supported (this build reads {HEAD_FORMAT_VERSION!r})"
            )
        tensors = load_file(str(path))
        head = cls(
            np.asarray(tensors["weight"], dtype=np.float32),
            np.asarray(tensors["bias"], dtype=np.float32),
            json.loads(metadata.get("info", "{}")),
        )
        if head.version != metadata.get("version"):
            raise ValueError(f"{path}: weights do not match the recorded version (corrupt file)")
        return head


@dataclass(frozen=True)
class Separation:
    """Same-person vs different-person cosine similarity over all pairs of a set of faces."""

    mean_same: float
    mean_different: float
    auc: float
    same_pairs: int
    different_pairs: int

    @property
    def gap(self) -> float:
        return self.mean_same - self.mean_different


@dataclass(frozen=True)
class TrainingReport:
    """The head (trained on the training photos only), held-out separation without and with
    it, and whether to use it."""

    head: TrainedHead
    before: Separation
    after: Separation
    keep: bool
    train_faces: int
    heldout_faces: int


def separation(embeddings: ArrayLike, labels: ArrayLike) -> Separation:
    scores = pair_scores(embeddings, labels)
    nan = float("nan")
    return Separation(
        float(scores.same.mean()) if len(scores.same) else nan,
        float(scores.different.mean()) if len(scores.different) else nan,
        auc(scores.same, scores.different),
        len(scores.same),
        len(scores.different),
    )


class ProjectionHead(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        with torch.no_grad():
            if in_dim == out_dim:
                self.linear.weight.copy_(torch.eye(in_dim))
            else:
                # Orthonormal rows keep cosine geometry as well as a d -> out map can.
                nn.init.orthogonal_(self.linear.weight)
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.linear(x), dim=1)


def batch_hard_triplet_loss(
    embedded: torch.Tensor, labels: torch.Tensor, margin: float
) -> torch.Tensor:
    """Hermans et al. 2017: for each anchor, its farthest same-person face and its closest
    other-person face in the batch; hinge on their cosine distances."""
    distances = 1.0 - embedded @ embedded.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    positive_mask = same & ~eye
    hardest_positive = torch.where(positive_mask, distances, torch.zeros_like(distances)).amax(1)
    hardest_negative = torch.where(same, torch.full_like(distances, 4.0), distances).amin(1)
    valid = positive_mask.any(1) & (~same).any(1)
    if not bool(valid.any()):
        return embedded.sum() * 0.0
    losses = torch.relu(hardest_positive - hardest_negative + margin)
    return losses[valid].mean()


def pk_batches(label_ids: NDArray[np.int64], rng: np.random.Generator) -> list[NDArray[np.int64]]:
    """One epoch of P x K batches: P people, K faces each (drawn with replacement only for
    people with fewer than K faces), about as many faces in all as the data set holds."""
    by_person: dict[int, NDArray[np.int64]] = {
        int(person): np.flatnonzero(label_ids == person) for person in np.unique(label_ids)
    }
    eligible = [person for person, faces in by_person.items() if len(faces) >= 2]
    persons_per_batch = min(PERSONS_PER_BATCH, len(eligible))
    if persons_per_batch < 2:
        return []
    count = max(1, int(np.ceil(len(label_ids) / (persons_per_batch * FACES_PER_PERSON))))
    batches = []
    for _ in range(count):
        chosen = rng.choice(eligible, size=persons_per_batch, replace=False)
        parts = []
        for person in chosen.tolist():
            faces = by_person[person]
            replace = len(faces) < FACES_PER_PERSON
            parts.append(rng.choice(faces, size=FACES_PER_PERSON, replace=replace))
        batches.append(np.concatenate(parts))
    return batches


def train_head(
    embeddings: ArrayLike,
    labels: Sequence[Hashable] | NDArray[np.generic],
    epochs: int = DEFAULT_EPOCHS,
    margin: float = DEFAULT_MARGIN,
    seed: int = 0,
    out_dim: int | None = None,
    learning_rate: float = 0.01,
    identity_weight: float = 0.001,
) -> TrainedHead:
    """Train a projection head with batch-hard triplet loss on labelled embeddings.

    ``identity_weight`` pulls the weights towards their starting point (identity or the
    initial orthonormal map): with a few dozen labelled people a free linear map overfits
    quickly, and the pull keeps the general-purpose geometry the recogniser learned.
    Deterministic for a given ``seed``.
    """
    vectors = normalise_rows(embeddings).astype(np.float32)
    names = np.asarray(labels)
    if len(names) != len(vectors):
        raise ValueError(f"{len(vectors)} embeddings but {len(names)} labels")
    _, label_ids = np.unique(names, return_inverse=True)
    in_dim = vectors.shape[1]
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        model = ProjectionHead(in_dim, out_dim or in_dim)
    start = [p.detach().clone() for p in model.parameters()]
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)
    inputs = torch.from_numpy(vectors)
    targets = torch.from_numpy(label_ids.astype(np.int64))
    last_loss = float("nan")
    for _ in range(epochs):
        for batch in pk_batches(label_ids.astype(np.int64), rng):
            index = torch.from_numpy(batch)
            loss = batch_hard_triplet_loss(model(inputs[index]), targets[index], margin)
            pull = sum(
                ((p - p0) ** 2).sum() for p, p0 in zip(model.parameters(), start, strict=True)
            )
            total = loss + identity_weight * pull
            optimiser.zero_grad()
            torch.autograd.backward(total)
            optimiser.step()
            last_loss = float(loss.detach())
    info = {
        "epochs": str(epochs),
        "margin": str(margin),
        "seed": str(seed),
        "faces": str(len(vectors)),
        "persons": str(int(label_ids.max(initial=-1)) + 1),
        "final_triplet_loss": f"{last_loss:.6f}",
    }
    return TrainedHead(
        model.linear.weight.detach().numpy().astype(np.float32).copy(),
        model.linear.bias.detach().numpy().astype(np.float32).copy(),
        info,
    )


def split_by_photo(
    photo_ids: Sequence[Hashable] | NDArray[np.generic],
    holdout_fraction: float = 0.25,
    seed: int = 0,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """(train mask, held-out mask) over faces, holding out about ``holdout_fraction`` of the
    PHOTOS: faces of one photo share lighting and camera, so splitting by face would let the
    head be tested on near-copies of what it trained on."""
    faces_of: dict[Hashable, list[int]] = defaultdict(list)
    for index, photo in enumerate(photo_ids):
        faces_of[photo].append(index)
    photos = sorted(faces_of, key=str)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(photos))
    heldout_count = round(holdout_fraction * len(photos))
    heldout = np.zeros(len(photo_ids), dtype=bool)
    for position in order[:heldout_count].tolist():
        heldout[faces_of[photos[position]]] = True
    return ~heldout, heldout


def train_and_evaluate(
    embeddings: ArrayLike,
    labels: Sequence[Hashable] | NDArray[np.generic],
    photo_ids: Sequence[Hashable] | NDArray[np.generic],
    epochs: int = DEFAULT_EPOCHS,
    margin: float = DEFAULT_MARGIN,
    seed: int = 0,
    holdout_fraction: float = 0.25,
    min_auc_gain: float = 0.02,
    out_dim: int | None = None,
) -> TrainingReport:
    """Train on the training photos, compare held-out pair AUC with and without the head.

    ``keep`` is True only when the head's held-out AUC beats the untrained space's by more
    than ``min_auc_gain``: with labels unrelated to the embeddings, where no head can help,
    a trained head still moved held-out AUC by up to 0.018 (60 held-out faces), so a smaller
    gain is not evidence. A held-out set without both same- and different-person pairs cannot
    show a gain, so ``keep`` is False then.
    """
    vectors = normalise_rows(embeddings).astype(np.float32)
    names = np.asarray(labels)
    train, heldout = split_by_photo(photo_ids, holdout_fraction, seed)
    head = train_head(vectors[train], names[train], epochs, margin, seed, out_dim)
    before = separation(vectors[heldout], names[heldout])
    after = separation(head.apply(vectors[heldout]), names[heldout])
    measurable = not (np.isnan(before.auc) or np.isnan(after.auc))
    keep = measurable and after.auc > before.auc + min_auc_gain
    return TrainingReport(head, before, after, bool(keep), int(train.sum()), int(heldout.sum()))
