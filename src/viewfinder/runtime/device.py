"""Choosing the torch device once, loudly, instead of silently falling back to the CPU."""

from __future__ import annotations

import logging

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


def inference_dtype(device: str) -> torch.dtype:
    """fp16 on GPU halves memory and doubles throughput; the CPU stays in fp32 for accuracy."""
    return torch.float16 if device == "cuda" else torch.float32
