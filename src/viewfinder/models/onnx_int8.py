"""The CLIP towers in ONNX Runtime with int8 weights, for CPUs (``VIEWFINDER_CPU_INT8``).

Each tower is exported from the checkpoint with ``torch.onnx.export`` once, quantised with
ONNX Runtime's dynamic quantisation (int8 weights, activations quantised per batch at run time)
and cached as ``<model cache>/onnx-int8/<key>.onnx``. The key hashes the checkpoint's config and
weight files and the torch, transformers and onnxruntime versions, so a changed checkpoint or
toolchain builds a new file and a crash mid-build leaves no file under the key (it is renamed
into place complete). Preprocessing and tokenisation are the torch encoders' (``clip.py``);
outputs are L2-normalised float32 like theirs. The ``onnx`` package is needed to build a cache
entry (``pip install 'viewfinder[int8]'``), not to run one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
import torch
import transformers
from numpy.typing import NDArray
from transformers import CLIPTextConfig

from viewfinder.atomic import atomic_path
from viewfinder.errors import ModelUnavailableError
from viewfinder.models.clip import (
    ClipTokens,
    TextEmbedder,
    _TextTower,
    _VisionTower,
    clip_image_preprocessing,
)
from viewfinder.models.embedders import Embedding, ImageEmbedder, TokenIds, unit_rows

log = logging.getLogger(__name__)

Tower = Literal["image", "text"]
RECIPE = 1  # bump when the export or quantisation below changes, so old cache entries retire
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
INSTALL_HINT = "pip install 'viewfinder[int8]'"


def cache_key(model_dir: Path, tower: Tower) -> str:
    """A name for the int8 file of ``tower``: the hash of the checkpoint's config and weight
    files (names and bytes) and of the toolchain that exports and quantises them."""
    digest = hashlib.sha256()
    toolchain = (
        f"recipe {RECIPE}; tower {tower}; torch {torch.__version__}; "
        f"transformers {transformers.__version__}; onnxruntime {ort.__version__}"
    )
    digest.update(toolchain.encode())
    files = sorted(
        path
        for path in model_dir.iterdir()
        if path.is_file() and (path.name == "config.json" or path.suffix in WEIGHT_SUFFIXES)
    )
    for path in files:
        digest.update(b"\0" + path.name.encode() + b"\0")
        with path.open("rb") as data:
            for chunk in iter(lambda: data.read(1 << 20), b""):
                digest.update(chunk)
    return f"clip-{tower}-{digest.hexdigest()[:32]}"


def require_onnx() -> None:
    """Raise ``ModelUnavailableError`` naming the extra unless the ``onnx`` package imports."""
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise ModelUnavailableError(
            "VIEWFINDER_CPU_INT8 needs the 'onnx' package to export and quantise the CLIP "
            f"towers, and it is not installed: {INSTALL_HINT} (or unset VIEWFINDER_CPU_INT8)"
        ) from exc


class _ImageEmbeds(torch.nn.Module):
    def __init__(self, tower: torch.nn.Module) -> None:
        super().__init__()
        self.tower = tower

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        embeds: torch.Tensor = self.tower(pixel_values=pixel_values).image_embeds
        return embeds


class _TextEmbeds(torch.nn.Module):
    def __init__(self, tower: torch.nn.Module) -> None:
        super().__init__()
        self.tower = tower

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        embeds: torch.Tensor = self.tower(
            input_ids=input_ids, attention_mask=attention_mask
        ).text_embeds
        return embeds


def export_tower(model_dir: Path, tower: Tower, out: Path, quantize: bool = True) -> None:
    """Write ``tower`` of the checkpoint as an ONNX graph with a dynamic batch axis (and a
    dynamic sequence axis for text) to ``out``: int8 weights, or fp32 with ``quantize=False``."""
    example: tuple[torch.Tensor, ...]
    if tower == "image":
        vision = _VisionTower.from_pretrained(model_dir, dtype=torch.float32)
        size = vision.config.image_size  # CLIP's vision embeddings take a square int size
        assert isinstance(size, int), size
        wrapper: torch.nn.Module = _ImageEmbeds(vision)
        example = (torch.zeros(2, 3, size, size),)
        inputs = {"pixel_values": {0: "batch"}}
    else:
        text = _TextTower.from_pretrained(model_dir, dtype=torch.float32)
        tokens = ClipTokens(model_dir, int(text.config.max_position_embeddings))
        # Two lengths, so the traced graph has seen padding under the mask.
        input_ids, attention = tokens.pad([tokens.encode("a photo"), tokens.encode("a b c d e")])
        wrapper = _TextEmbeds(text)
        example = (torch.from_numpy(input_ids), torch.from_numpy(attention))
        axes = {0: "batch", 1: "tokens"}
        inputs = {"input_ids": axes, "attention_mask": axes}
    wrapper.eval()
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as scratch:
        graph = Path(scratch) / "fp32.onnx"
        with warnings.catch_warnings():  # tracer notes about Python branches on shapes
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                example,
                str(graph),
                input_names=list(inputs),
                output_names=["embeds"],
                dynamic_axes={**inputs, "embeds": {0: "batch"}},
                dynamo=False,
                opset_version=17,
            )
        if quantize:
            _quantize(graph, out)
        else:
            os.replace(graph, out)


def _quantize(graph: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(graph))
    # The exporter's intermediate shape annotations trip the quantiser's own shape inference.
    del model.graph.value_info[:]
    onnx.save(model, str(graph))
    quantize_dynamic(str(graph), str(out), weight_type=QuantType.QInt8)


def int8_tower(model_dir: Path, tower: Tower, cache_dir: Path) -> Path:
    """The cached int8 graph of ``tower``, exported and quantised on first use."""
    path = cache_dir / "onnx-int8" / f"{cache_key(model_dir, tower)}.onnx"
    if path.is_file():
        return path
    require_onnx()
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("exporting the CLIP %s tower of %s to ONNX int8 (once)", tower, model_dir)
    with atomic_path(path) as partial:
        export_tower(model_dir, tower, partial)
    log.info("cached %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path


def _session(graph: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])


def _embeddings(session: Any, feeds: dict[str, NDArray[Any]]) -> list[Embedding]:
    raw = session.run(["embeds"], feeds)[0]
    return unit_rows(torch.from_numpy(np.asarray(raw, dtype=np.float32)))


class OnnxClipImageEncoder(ImageEmbedder):
    """``ClipImageEncoder`` on an ONNX graph of the image tower (``graph``, usually int8)."""

    def __init__(self, model_dir: Path, graph: Path, threads: int) -> None:
        self._session = _session(graph, threads)
        self._preprocessing = clip_image_preprocessing(model_dir)
        self._dim = int(self._session.get_outputs()[0].shape[-1])

    @classmethod
    def int8(cls, model_dir: Path, cache_dir: Path, threads: int) -> OnnxClipImageEncoder:
        return cls(model_dir, int8_tower(model_dir, "image", cache_dir), threads)

    @property
    def dim(self) -> int:
        return self._dim

    def forward(self, batch: Sequence[NDArray[np.float32]]) -> list[Embedding]:
        # One run per item: dynamic int8 quantises activations with one scale per run, so a
        # batched run would make an embedding depend on its batch mates (and on the load). On
        # this runtime batch 1 is as fast per image as batch 16 (21.4 vs 22.4 ms measured).
        return [_embeddings(self._session, {"pixel_values": item[None]})[0] for item in batch]


class OnnxClipTextEncoder(TextEmbedder):
    """``ClipTextEncoder`` on an ONNX graph of the text tower (``graph``, usually int8)."""

    def __init__(self, model_dir: Path, graph: Path, threads: int) -> None:
        self._session = _session(graph, threads)
        config = CLIPTextConfig.from_pretrained(model_dir)
        self._tokens = ClipTokens(model_dir, int(config.max_position_embeddings))
        self._dim = int(self._session.get_outputs()[0].shape[-1])

    @classmethod
    def int8(cls, model_dir: Path, cache_dir: Path, threads: int) -> OnnxClipTextEncoder:
        return cls(model_dir, int8_tower(model_dir, "text", cache_dir), threads)

    @property
    def dim(self) -> int:
        return self._dim

    def forward(self, batch: Sequence[TokenIds]) -> list[Embedding]:
        out = []
        for ids in batch:  # one run per text, as for images (and no padding to share a scale)
            input_ids, attention = self._tokens.pad([ids])
            feeds = {"input_ids": input_ids, "attention_mask": attention}
            out.append(_embeddings(self._session, feeds)[0])
        return out
