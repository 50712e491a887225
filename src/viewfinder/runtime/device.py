"""Choosing the torch device once, loudly, instead of silently falling back to the CPU."""

from __future__ import annotations

import contextlib
import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from viewfinder.errors import DeviceUnavailableError
from viewfinder.settings import Settings

log = logging.getLogger(__name__)


def select_device(settings: Settings) -> str:
    """Return ``"cuda"`` or ``"cpu"`` as configured, or raise ``DeviceUnavailableError``."""
    has_cuda = torch.cuda.is_available()
    if settings.device == "cuda" and not has_cuda:
        raise DeviceUnavailableError(
            "IMAGE_EMBED_DEVICE/VIEWFINDER_DEVICE is 'cuda' but no CUDA device is visible to "
            "PyTorch (torch.cuda.is_available() is False). Install a CUDA build of torch and "
            "check the driver, or set VIEWFINDER_DEVICE=cpu."
        )
    wants_cuda = settings.device == "cuda" or (settings.device == "auto" and has_cuda)
    device = "cuda" if wants_cuda else "cpu"
    if settings.require_gpu and device != "cuda":
        raise DeviceUnavailableError(
            "IMAGE_EMBED_REQUIRE_GPU/VIEWFINDER_REQUIRE_GPU is set but no GPU is available "
            f"(torch {torch.__version__}, cuda available: {has_cuda}, device setting: "
            f"{settings.device!r}). Refusing to start on the CPU."
        )
    if device == "cuda":
        log.info("models run on %s", torch.cuda.get_device_name(0))
    else:
        log.info("models run on the CPU with %d torch threads", torch.get_num_threads())
    return device


@dataclass(frozen=True)
class Precision:
    """How the transformers models compute: the dtype their weights are loaded in, and whether
    their forward pass runs under bfloat16 autocast on the CPU (weights stay fp32; matmuls and
    convolutions run in bf16, norms and softmax in fp32)."""

    weights: torch.dtype = torch.float32
    cpu_bf16_autocast: bool = False

    def forward_context(self) -> AbstractContextManager[object]:
        """Wrap a forward pass (or a ``generate`` call) in this."""
        if self.cpu_bf16_autocast:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()


FP32 = Precision()


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matmuls run at about twice the fp32 rate. Without either, oneDNN
    emulates bf16 and autocast is slower than fp32."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def inference_precision(device: str, settings: Settings) -> Precision:
    """fp16 on GPU halves memory and doubles throughput. The CPU stays in fp32 (outputs equal the
    reference implementation) unless ``VIEWFINDER_CPU_BF16`` trades about three decimal digits of
    the embeddings for 1.4-1.8x the throughput on CPUs with native bf16."""
    if device == "cuda":
        return Precision(weights=torch.float16)
    if not settings.cpu_bf16:
        return FP32
    if not cpu_has_native_bf16():
        log.warning(
            "VIEWFINDER_CPU_BF16 is set but this CPU has neither AVX512-BF16 nor AMX: bf16 would "
            "be emulated and slower than fp32, so the models stay in fp32"
        )
        return FP32
    log.info("transformers models run under bf16 autocast on the CPU (VIEWFINDER_CPU_BF16)")
    return Precision(cpu_bf16_autocast=True)
