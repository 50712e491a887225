"""Tiny random checkpoints of the real architectures, built offline.

Each builder writes a directory in the layout a model hub snapshot has (``config.json`` and
safetensors weights from ``save_pretrained``, a tokenizer ``AutoTokenizer`` loads, and a
``preprocessor_config.json``), so the production loading code runs on it unchanged. Weights are
random but deterministic (fixed seed, the global torch RNG left untouched); tokenizers are
learned from a built-in word list, so nothing is downloaded and a rebuild is byte-identical.
"""

from __future__ import annotations

import itertools
import json
import string
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from tokenizers import pre_tokenizers
from transformers import (
    BertTokenizer,
    BlipConfig,
    BlipForConditionalGeneration,
    CLIPConfig,
    CLIPModel,
    CLIPTokenizer,
    Dinov2Config,
    Dinov2Model,
    DINOv3ViTConfig,
    DINOv3ViTModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from viewfinder.models.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
)

SEED = 0

# Enough everyday caption words for BPE merges and WordPiece pieces to be real subwords.
CAPTION_WORDS = (
    "a an the of on in at with and two three photo picture image painting drawing portrait "
    "man woman person people child children boy girl baby family group crowd face smiling "
    "dog dogs cat cats horse bird birds cow sheep elephant zebra giraffe bear animal "
    "car cars bus truck train bicycle motorcycle boat airplane plane rocket road street "
    "city building house room kitchen table chair bed couch window door wall floor "
    "tree trees grass field flower flowers garden park forest mountain mountains hill "
    "beach sea ocean water lake river sky cloud clouds sunset sunrise night day snow rain "
    "red blue green yellow black white brown orange pink purple grey gray colorful dark "
    "bright small large big little old young sitting standing walking running playing "
    "riding holding eating looking wearing shirt hat dress food pizza cake plate cup "
    "ball game sports tennis soccer skateboard surfboard astronaut coffee camera phone"
)
WORDS = tuple(CAPTION_WORDS.split())
CLIP_BOS = "<|startoftext|>"
CLIP_EOS = "<|endoftext|>"
BLIP_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
BLIP_DECODER_START = "[DEC]"
CLIP_MERGES = 300

# A tiny tower: every architecture's tiny config shares these.
TINY_TOWER: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
}
TINY_IMAGE_SIZE = 32
TINY_PATCH_SIZE = 8


def build_tiny_clip(path: Path, projection_dim: int = 16) -> Path:
    """CLIP with 32-wide, 2-layer towers, 32x32 input, 16-d projection (or ``projection_dim``:
    a second tiny CLIP whose vectors have another length).

    Its ``preprocessor_config.json`` has the OpenAI checkpoint's legacy layout (bare integers)
    with shortest edge 40 and crop 32, so resize and crop both do something.
    """
    tokenizer = _clip_tokenizer()
    config = _clip_config(
        tokenizer,
        text_tower=TINY_TOWER,
        vision_tower={**TINY_TOWER, "image_size": TINY_IMAGE_SIZE, "patch_size": TINY_PATCH_SIZE},
        projection_dim=projection_dim,
    )
    preprocessor = _openai_clip_preprocessor(shortest_edge=40, crop=TINY_IMAGE_SIZE)
    return _save(path, lambda: CLIPModel(config), tokenizer, preprocessor)


def build_clip(path: Path, size: Literal["tiny", "base"] = "base") -> Path:
    """A CLIP checkpoint with random weights; ``"base"`` has ViT-B/32's exact dimensions
    (768-wide 12-layer vision tower, patch 32, 224 input, 512-d projection, 512-wide text
    tower, 49408-token vocabulary), so timings match the real model. About 600 MB on disk."""
    if size == "tiny":
        return build_tiny_clip(path)
    tokenizer = _clip_tokenizer()
    text_tower = {
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 8,
        "vocab_size": 49408,
    }
    vision_tower = {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 224,
        "patch_size": 32,
    }
    config = _clip_config(
        tokenizer, text_tower=text_tower, vision_tower=vision_tower, projection_dim=512
    )
    preprocessor = _openai_clip_preprocessor(shortest_edge=224, crop=224)
    return _save(path, lambda: CLIPModel(config), tokenizer, preprocessor)


def build_tiny_dinov2(path: Path) -> Path:
    """DINOv2, 32 wide, 2 layers, patch 8; ``BitImageProcessor`` config: shortest edge 40,
    crop 32, bicubic, ImageNet mean/std (the real one: 256 / 224)."""
    config = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=2,
        image_size=TINY_IMAGE_SIZE,
        patch_size=TINY_PATCH_SIZE,
    )
    preprocessor = {
        "image_processor_type": "BitImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": 40},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(IMAGENET_MEAN),
        "image_std": list(IMAGENET_STD),
        "do_convert_rgb": True,
    }
    return _save(path, lambda: Dinov2Model(config), None, preprocessor)


def build_tiny_dinov3(path: Path) -> Path:
    """DINOv3 ViT, 32 wide, 2 layers, patch 8, 2 register tokens; its processor config as the
    hub has it (32x32 here, bilinear, ImageNet mean/std, no crop)."""
    config = DINOv3ViTConfig(
        **TINY_TOWER,
        patch_size=TINY_PATCH_SIZE,
        image_size=TINY_IMAGE_SIZE,
        num_register_tokens=2,
    )
    preprocessor = {
        "image_processor_type": "DINOv3ViTImageProcessorFast",
        "do_resize": True,
        "size": {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
        "resample": 2,
        "do_center_crop": None,
        "crop_size": None,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(IMAGENET_MEAN),
        "image_std": list(IMAGENET_STD),
    }
    return _save(path, lambda: DINOv3ViTModel(config), None, preprocessor)


def build_tiny_blip(path: Path) -> Path:
    """BLIP captioning, 32-wide 2-layer towers, 32x32 input, uncased WordPiece vocabulary.

    The ``[SEP]`` (end of caption) logit is pushed far down, so greedy captions always run to
    ``max_length``: tests of the length limit then bind instead of passing by an early stop.
    """
    tokenizer = _blip_tokenizer()
    vocab = tokenizer.get_vocab()
    sep_id = vocab["[SEP]"]
    text_config = {
        **TINY_TOWER,
        "vocab_size": len(vocab),
        "max_position_embeddings": 64,
        "bos_token_id": vocab[BLIP_DECODER_START],
        "pad_token_id": vocab["[PAD]"],
        "sep_token_id": sep_id,
        "eos_token_id": sep_id,
    }
    vision_config = {
        **TINY_TOWER,
        "image_size": TINY_IMAGE_SIZE,
        "patch_size": TINY_PATCH_SIZE,
    }
    config = BlipConfig(text_config=text_config, vision_config=vision_config, projection_dim=16)

    def model() -> PreTrainedModel:
        blip = BlipForConditionalGeneration(config)
        with torch.no_grad():
            blip.text_decoder.cls.predictions.bias[sep_id] = -1e4
        return blip

    preprocessor = {
        "image_processor_type": "BlipImageProcessor",
        "do_resize": True,
        "size": {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
        "resample": 3,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(OPENAI_CLIP_MEAN),
        "image_std": list(OPENAI_CLIP_STD),
        "do_convert_rgb": True,
    }
    return _save(path, model, tokenizer, preprocessor)


def _save(
    path: Path,
    build_model: Callable[[], PreTrainedModel],
    tokenizer: PreTrainedTokenizerBase | None,
    preprocessor: dict[str, Any],
) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = build_model()
    model.save_pretrained(path)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    (path / "preprocessor_config.json").write_text(
        json.dumps(preprocessor, indent=2) + "\n", encoding="utf-8"
    )
    return path


def _openai_clip_preprocessor(shortest_edge: int, crop: int) -> dict[str, Any]:
    return {
        "feature_extractor_type": "CLIPFeatureExtractor",
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": shortest_edge,
        "resample": 3,
        "do_center_crop": True,
        "crop_size": crop,
        "do_normalize": True,
        "image_mean": list(OPENAI_CLIP_MEAN),
        "image_std": list(OPENAI_CLIP_STD),
    }


def _clip_config(
    tokenizer: CLIPTokenizer,
    *,
    text_tower: dict[str, Any],
    vision_tower: dict[str, Any],
    projection_dim: int,
) -> CLIPConfig:
    # Each tower's config carries projection_dim too, as the hub's do: a tower loaded alone
    # (CLIPVisionModelWithProjection) reads it from there.
    text_config = {
        **text_tower,
        "vocab_size": max(int(text_tower.get("vocab_size", 0)), len(tokenizer.get_vocab())),
        "max_position_embeddings": 77,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "projection_dim": projection_dim,
    }
    vision_config = {**vision_tower, "projection_dim": projection_dim}
    return CLIPConfig(
        text_config=text_config, vision_config=vision_config, projection_dim=projection_dim
    )


def _clip_tokenizer() -> CLIPTokenizer:
    """A byte-level BPE in CLIP's layout: the 256 byte symbols, the same with the ``</w>``
    end-of-word suffix, the learned merges, then start and end of text (the highest ids)."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    merges = _learn_bpe_merges(WORDS, CLIP_MERGES)
    vocab: dict[str, int] = {}
    for symbol in [*alphabet, *(s + "</w>" for s in alphabet), *(a + b for a, b in merges)]:
        vocab.setdefault(symbol, len(vocab))
    vocab[CLIP_BOS] = len(vocab)
    vocab[CLIP_EOS] = len(vocab)
    # tokenizers' BPE takes merges as pairs; CLIPTokenizer's annotation says strings.
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)  # type: ignore[arg-type]


def _learn_bpe_merges(words: Sequence[str], count: int) -> list[tuple[str, str]]:
    """Classic BPE merge learning, ties broken by the pair itself.

    ``tokenizers``' own trainers break ties in hash-map order, which changes between runs; a
    checkpoint built twice must be byte-identical, so the (tiny) learning is done here. Words
    are ASCII, where byte-level symbols are the characters themselves.
    """
    frequencies = Counter(words)
    pieces = {word: (*word[:-1], word[-1] + "</w>") for word in frequencies}
    merges: list[tuple[str, str]] = []
    while len(merges) < count:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, symbols in pieces.items():
            for pair in itertools.pairwise(symbols):
                pairs[pair] += frequencies[word]
        if not pairs:
            break
        best = max(pairs, key=lambda pair: (pairs[pair], pair))
        merges.append(best)
        pieces = {word: _merge(symbols, best) for word, symbols in pieces.items()}
    return merges


def _merge(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    merged: list[str] = []
    index = 0
    while index < len(symbols):
        if index + 1 < len(symbols) and (symbols[index], symbols[index + 1]) == pair:
            merged.append(symbols[index] + symbols[index + 1])
            index += 2
        else:
            merged.append(symbols[index])
            index += 1
    return tuple(merged)


def _blip_tokenizer() -> BertTokenizer:
    """An uncased WordPiece vocabulary in BERT's layout (specials first, then characters, their
    ``##`` continuations, whole words) plus BLIP's decoder start token ``[DEC]`` at the end, as
    in the real checkpoint. Written out rather than trained, so it is the same every time."""
    characters = string.ascii_lowercase + string.digits + string.punctuation
    symbols = dict.fromkeys(  # ordered and without repeats ("a" is a character and a word)
        [
            *BLIP_SPECIALS,
            *characters,
            *(f"##{c}" for c in string.ascii_lowercase + string.digits),
            *WORDS,
            BLIP_DECODER_START,
        ]
    )
    vocab = {symbol: index for index, symbol in enumerate(symbols)}
    return BertTokenizer(vocab=vocab, bos_token=BLIP_DECODER_START, model_max_length=512)
