"""Where classifier training data comes from: the library's collections (members are positives,
other embedded assets negatives) or seed 000's export format (collections metadata plus
pre-computed embeddings with labels), from a folder or a URL."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.classifiers.store import ClassifierStore
from viewfinder.classifiers.training import (
    CollectionReport,
    TrainingSet,
    read_report,
    save_report,
    train_collection,
)
from viewfinder.db import collections as collections_repo
from viewfinder.db import embeddings as embeddings_repo
from viewfinder.errors import InvalidInputError
from viewfinder.imaging.fetch import FetchPolicy, fetch_image_bytes
from viewfinder.library.processing import CLIP_MODEL

# Enough negatives to describe "everything else" without letting a huge library drown the
# positives (class weights are balanced anyway).
MAX_NEGATIVES = 5000
MAX_TRAINING_DATA_BYTES = 512 * 1024 * 1024
_JSON_IN_TEXT = re.compile(r"(\[.*\]|\{.*\})", re.DOTALL)


class ClassifierTrainer:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: ClassifierStore,
        fetch_policy: FetchPolicy,
        seed: int = 42,
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._fetch_policy = dataclasses.replace(fetch_policy, max_bytes=MAX_TRAINING_DATA_BYTES)
        self._seed = seed

    def train(self, sets: Sequence[TrainingSet]) -> list[CollectionReport]:
        reports = [train_collection(self._store, data, seed=self._seed) for data in sets]
        save_report(self._store, reports)
        return reports

    def report(self) -> Any:
        """The report of the last training run (per collection: size, precision, recall,
        version); NotFoundError before the first."""
        return read_report(self._store)

    def train_from(
        self, source: str | None = None, collection_ids: Sequence[int] | None = None
    ) -> list[CollectionReport]:
        """Train on seed 000 data at ``source`` (a folder or URL), else on the library's
        collections (``collection_ids``; None: every one)."""
        if source is not None:
            return self.train(self.seed_sets(source))
        return self.train(self.library_sets(collection_ids))

    # --- the library's collections -----------------------------------------------------------

    def library_sets(self, collection_ids: Sequence[int] | None = None) -> list[TrainingSet]:
        with self._sessions() as session:
            chunks = list(embeddings_repo.iter_embeddings(session, CLIP_MODEL))
            listed = collections_repo.list_collections(session)
            wanted = [c for c, _ in listed if collection_ids is None or c.id in collection_ids]
            missing = set(collection_ids or []) - {c.id for c in wanted}
            if missing:
                raise InvalidInputError(f"no collection with id {sorted(missing)}")
            members = {c.id: collections_repo.member_ids(session, c.id) for c in wanted}
        if not chunks:
            ids, vectors = np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
        else:
            ids = np.concatenate([c[0] for c in chunks])
            vectors = np.concatenate([c[1] for c in chunks])
        rng = np.random.default_rng(self._seed)
        sets = []
        for collection in wanted:
            positive = np.isin(ids, members[collection.id])
            negative_rows = np.flatnonzero(~positive)
            if len(negative_rows) > MAX_NEGATIVES:
                negative_rows = np.sort(rng.choice(negative_rows, MAX_NEGATIVES, replace=False))
            rows = np.concatenate([np.flatnonzero(positive), negative_rows])
            labels = np.concatenate(
                [
                    np.ones(int(positive.sum()), dtype=np.int64),
                    np.zeros(len(negative_rows), dtype=np.int64),
                ]
            )
            sets.append(TrainingSet(collection.id, collection.name, vectors[rows], labels))
        return sets

    # --- seed 000's export format ------------------------------------------------------------

    def seed_sets(self, source: str) -> list[TrainingSet]:
        """``source`` is a folder or an http(s) base URL holding ``collections.json`` (a list of
        ``{"id", "name"}``) and ``collections/{id}/training_data.json`` (a list of
        ``{"embedding": [...], "label": 0|1}``), the layout seed 000's script downloads."""
        collections = self._read_json(source, "collections.json")
        if not isinstance(collections, list):
            raise InvalidInputError("collections.json must be a JSON array of {id, name}")
        sets = []
        for entry in collections:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
                continue  # the seed skips invalid entries too
            cid, name = int(entry["id"]), str(entry.get("name", entry["id"]))
            items = self._read_json(source, f"collections/{cid}/training_data.json")
            sets.append(_seed_training_set(cid, name, items))
        return sets

    def _read_json(self, source: str, relative: str) -> Any:
        if source.startswith(("http://", "https://")):
            text = fetch_image_bytes(f"{source.rstrip('/')}/{relative}", self._fetch_policy).decode(
                "utf-8", "replace"
            )
        else:
            path = Path(source) / relative
            try:
                text = path.read_text("utf-8")
            except OSError as exc:
                raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from None
        # The seed's endpoint sometimes wraps its JSON in HTML: take the JSON part.
        match = _JSON_IN_TEXT.search(text)
        try:
            return json.loads(match.group(1) if match else text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{relative} is not valid JSON: {exc}") from None
        except RecursionError:
            raise InvalidInputError(f"{relative} is nested too deeply") from None


def _seed_training_set(cid: int, name: str, items: object) -> TrainingSet:
    if not isinstance(items, list) or not items:
        raise InvalidInputError(f"training data of collection {cid} must be a non-empty list")
    try:
        features = np.asarray([item["embedding"] for item in items], dtype=np.float32)
        labels = np.asarray([int(bool(item["label"])) for item in items], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"training data of collection {cid} is malformed: each item needs 'embedding' and "
            f"'label' ({exc})"
        ) from None
    if features.ndim != 2:
        raise InvalidInputError(f"collection {cid}: embeddings must all have the same length")
    return TrainingSet(cid, name, features, labels)
