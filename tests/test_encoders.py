"""CLIP, DINOv2, DINOv3 and BLIP on tiny random checkpoints built offline.

The reference for each encoder is transformers itself (its processors and full models) on the
same weights: our own preprocessing and tower-only loading must give the same embeddings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from PIL import Image
from transformers import (
    AutoImageProcessor,
    AutoTokenizer,
    BlipImageProcessor,
    CLIPImageProcessor,
    CLIPModel,
    Dinov2Model,
    DINOv3ViTModel,
)

from viewfinder.errors import InvalidRequestError
from viewfinder.models.caption import BlipCaptioner, CaptionRequest, PreparedCaption
from viewfinder.models.clip import ClipImageEncoder, ClipTextEncoder
from viewfinder.models.dino import DinoEncoder
from viewfinder.models.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImagePreprocessing,
    preprocessing_from_config,
)
from viewfinder.runtime.device import FP32, Precision
from viewfinder.testing.checkpoints import (
    build_clip,
    build_tiny_blip,
    build_tiny_clip,
    build_tiny_dinov2,
    build_tiny_dinov3,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PHOTOS = SHARED / "data"

# Our embeddings against transformers' on the same weights and pixels. fp32 on the CPU; the only
# freedom left is the order of float operations, which stays far below this.
EMBEDDING_TOLERANCE = 1e-5
# A batch pads and stacks differently from a single item; kernels may sum in another order.
BATCH_TOLERANCE = 1e-5

REAL_PHOTOS = (
    "captioned_skimage/astronaut.png",
    "captioned_skimage/camera.png",  # greyscale
    "captioned_skimage/rocket.jpg",
    "person_scenes/yolov5__bus.jpg",  # portrait
    "faces_face_recognition/examples__obama-1080p.jpg",
)
ODD_SIZES = ((1, 1), (3000, 20), (20, 3000), (33, 31))

Embedding = NDArray[np.float32]


@dataclass(frozen=True)
class Checkpoints:
    clip: Path
    dinov2: Path
    dinov3: Path
    blip: Path


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Checkpoints:
    root = tmp_path_factory.mktemp("tiny-checkpoints")
    return Checkpoints(
        clip=build_tiny_clip(root / "clip"),
        dinov2=build_tiny_dinov2(root / "dinov2"),
        dinov3=build_tiny_dinov3(root / "dinov3"),
        blip=build_tiny_blip(root / "blip"),
    )


@pytest.fixture(scope="module")
def clip_image(checkpoints: Checkpoints) -> ClipImageEncoder:
    return ClipImageEncoder(checkpoints.clip, "cpu", FP32)


@pytest.fixture(scope="module")
def clip_text(checkpoints: Checkpoints) -> ClipTextEncoder:
    return ClipTextEncoder(checkpoints.clip, "cpu", FP32)


@pytest.fixture(scope="module")
def clip_reference(checkpoints: Checkpoints) -> CLIPModel:
    return CLIPModel.from_pretrained(checkpoints.clip)  # in eval mode, as loaded


@pytest.fixture(scope="module")
def dinov2(checkpoints: Checkpoints) -> DinoEncoder:
    return DinoEncoder(checkpoints.dinov2, "cpu", FP32)


@pytest.fixture(scope="module")
def dinov3(checkpoints: Checkpoints) -> DinoEncoder:
    return DinoEncoder(checkpoints.dinov3, "cpu", FP32)


@pytest.fixture(scope="module")
def captioner(checkpoints: Checkpoints) -> BlipCaptioner:
    return BlipCaptioner(checkpoints.blip, "cpu", FP32)


def synthetic_image(width: int = 97, height: int = 61, seed: int = 0) -> Image.Image:
    """Smooth gradients plus noise, not square, so resize and crop both matter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
    noisy = base + rng.normal(0, 20, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def photo(relative: str) -> Image.Image:
    path = PHOTOS / relative
    if not path.is_file():
        pytest.skip(f"real photos not available: {path} is missing (../shared is absent)")
    with Image.open(path) as image:
        return image.convert("RGB")


IMAGE_CASES = [
    pytest.param(synthetic_image, id="synthetic-97x61"),
    pytest.param(lambda: synthetic_image(40, 300, seed=1), id="synthetic-40x300"),
    *(
        pytest.param(lambda name=name: photo(name), id=name, marks=pytest.mark.shared)
        for name in REAL_PHOTOS
    ),
]


def unit(features: torch.Tensor) -> NDArray[np.float32]:
    normalised: NDArray[np.float32] = torch.nn.functional.normalize(features, dim=-1).numpy()
    return normalised


def run_each(model: Any, items: Sequence[Any]) -> list[Any]:
    """Each item alone, through preprocess -> forward -> postprocess, as the runtime does."""
    results = []
    for item in items:
        prepared = model.preprocess(item)
        results.append(model.postprocess(model.forward([prepared])[0], prepared))
    return results


def run_batch(model: Any, items: Sequence[Any]) -> list[Any]:
    prepared = [model.preprocess(item) for item in items]
    raw = model.forward(prepared)
    return [model.postprocess(r, p) for r, p in zip(raw, prepared, strict=True)]


def max_diff(a: Sequence[Embedding] | Embedding, b: Sequence[Embedding] | Embedding) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def assert_unit_embedding(embedding: Embedding, dim: int) -> None:
    assert embedding.dtype == np.float32
    assert embedding.shape == (dim,)
    assert np.all(np.isfinite(embedding))
    assert abs(float(np.linalg.norm(embedding)) - 1.0) < 1e-5


# --- CLIP -----------------------------------------------------------------------------------


@pytest.mark.parametrize("make_image", IMAGE_CASES)
def test_clip_image_equals_transformers(
    make_image: Callable[[], Image.Image],
    checkpoints: Checkpoints,
    clip_image: ClipImageEncoder,
    clip_reference: CLIPModel,
) -> None:
    image = make_image()
    processor = CLIPImageProcessor.from_pretrained(checkpoints.clip)
    reference_pixels = processor(images=image, return_tensors="np")["pixel_values"]
    ours = clip_image.preprocess(image)
    assert ours.shape == reference_pixels.shape[1:]
    assert max_diff(ours, reference_pixels[0]) == 0.0

    with torch.inference_mode():
        features = clip_reference.get_image_features(
            pixel_values=torch.from_numpy(reference_pixels)
        ).pooler_output
    expected = unit(features)[0]
    embedding = clip_image.postprocess(clip_image.forward([ours])[0], ours)
    assert_unit_embedding(embedding, clip_image.dim)
    assert max_diff(embedding, expected) <= EMBEDDING_TOLERANCE


TEXTS = [
    "a photo of a cat",
    "A DOG running on the beach at sunset, with two children!",
    "",
    "Ünïcode café 123 🙂",
    " ".join(["a red bus on a city street"] * 20),  # longer than 77 tokens: truncated
]


def test_clip_text_equals_transformers(
    checkpoints: Checkpoints, clip_text: ClipTextEncoder, clip_reference: CLIPModel
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(checkpoints.clip)
    inputs = tokenizer(TEXTS, padding=True, truncation=True, max_length=77, return_tensors="pt")
    assert inputs["input_ids"].shape[1] == 77  # the long text really is truncated
    with torch.inference_mode():
        expected = unit(clip_reference.get_text_features(**inputs).pooler_output)

    embeddings = run_each(clip_text, TEXTS)
    for embedding in embeddings:
        assert_unit_embedding(embedding, clip_text.dim)
    assert max_diff(embeddings, expected) <= EMBEDDING_TOLERANCE


def test_clip_text_and_image_share_one_space(
    clip_text: ClipTextEncoder, clip_image: ClipImageEncoder
) -> None:
    assert clip_text.dim == clip_image.dim == 16


# --- DINOv2 / DINOv3 --------------------------------------------------------------------------


@pytest.mark.parametrize("make_image", IMAGE_CASES)
def test_dinov2_equals_transformers(
    make_image: Callable[[], Image.Image], checkpoints: Checkpoints, dinov2: DinoEncoder
) -> None:
    image = make_image()
    processor = AutoImageProcessor.from_pretrained(checkpoints.dinov2)  # type: ignore[no-untyped-call]
    assert type(processor).__name__.startswith("BitImageProcessor")
    reference_pixels = processor(images=image, return_tensors="np")["pixel_values"]
    ours = dinov2.preprocess(image)
    assert max_diff(ours, reference_pixels[0]) == 0.0

    reference = Dinov2Model.from_pretrained(checkpoints.dinov2)
    with torch.inference_mode():
        expected = unit(reference(pixel_values=torch.from_numpy(reference_pixels)).pooler_output)
    embedding = dinov2.forward([ours])[0]
    assert_unit_embedding(embedding, dinov2.dim)
    assert max_diff(embedding, expected[0]) <= EMBEDDING_TOLERANCE


def dinov3_pixels_by_hand(image: Image.Image, size: int) -> NDArray[np.float32]:
    """The documented DINOv3 preprocessing, written independently: bilinear resize to a square,
    scale to [0, 1], ImageNet mean/std, channels first."""
    resized = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float64)
    normalised = (resized / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    channels_first: NDArray[np.float32] = normalised.transpose(2, 0, 1).astype(np.float32)
    return channels_first


@pytest.mark.parametrize("make_image", IMAGE_CASES)
def test_dinov3_equals_model_on_documented_preprocessing(
    make_image: Callable[[], Image.Image], checkpoints: Checkpoints, dinov3: DinoEncoder
) -> None:
    image = make_image()
    by_hand = dinov3_pixels_by_hand(image, 32)
    ours = dinov3.preprocess(image)
    # float64 by hand vs float32 table: the last bit of a float32 only.
    assert max_diff(ours, by_hand) <= 1e-6

    reference = DINOv3ViTModel.from_pretrained(checkpoints.dinov3)
    with torch.inference_mode():
        expected = unit(reference(pixel_values=torch.from_numpy(by_hand[None])).pooler_output)
    embedding = dinov3.forward([ours])[0]
    assert_unit_embedding(embedding, dinov3.dim)
    assert max_diff(embedding, expected[0]) <= EMBEDDING_TOLERANCE


def test_dinov3_preprocessing_is_close_to_the_torchvision_processor(dinov3: DinoEncoder) -> None:
    """transformers' DINOv3 processor rescales to float, then resizes with torchvision's
    antialiased bilinear (torch's ``interpolate(..., antialias=True)``). Ours resizes the 8-bit
    image with PIL, which rounds after each of its two passes: under one grey level apart."""
    image = synthetic_image(300, 200, seed=2)
    as_float = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    resized = torch.nn.functional.interpolate(
        as_float[None], size=(32, 32), mode="bilinear", antialias=True, align_corners=False
    )[0]
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    torchvision_like = ((resized - mean) / std).numpy()
    one_level = 1 / 255 / min(IMAGENET_STD)
    assert max_diff(dinov3.preprocess(image), torchvision_like) < one_level


def test_dino_encoders_know_their_architecture(dinov2: DinoEncoder, dinov3: DinoEncoder) -> None:
    assert (dinov2.model_type, dinov3.model_type) == ("dinov2", "dinov3_vit")
    assert dinov2.dim == dinov3.dim == 32


def test_dino_encoder_refuses_another_architecture(checkpoints: Checkpoints) -> None:
    with pytest.raises(ValueError, match="'clip'"):
        DinoEncoder(checkpoints.clip, "cpu", FP32)


# --- batches and odd inputs -------------------------------------------------------------------


@pytest.fixture(params=["clip_image", "dinov2", "dinov3"])
def image_encoder(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


def test_image_batch_equals_singles(image_encoder: Any) -> None:
    images = [synthetic_image(97, 61, 0), synthetic_image(40, 300, 1), synthetic_image(64, 64, 2)]
    singles = run_each(image_encoder, images)
    batched = run_batch(image_encoder, images)
    assert max_diff(batched, singles) <= BATCH_TOLERANCE
    # The images differ, so a mixed-up batch would not pass the check above unnoticed.
    assert max_diff(singles[0], singles[1]) > 1e-3


def test_text_batch_equals_singles(clip_text: ClipTextEncoder) -> None:
    texts = ["a cat", "a photo of two dogs playing in the snow at night", "sunset"]
    assert max_diff(run_batch(clip_text, texts), run_each(clip_text, texts)) <= BATCH_TOLERANCE


@pytest.mark.parametrize(("width", "height"), ODD_SIZES)
def test_odd_image_sizes(image_encoder: Any, width: int, height: int) -> None:
    image = synthetic_image(width, height, seed=width)
    (embedding,) = run_each(image_encoder, [image])
    assert_unit_embedding(embedding, image_encoder.dim)


@pytest.mark.parametrize(("width", "height"), [(1, 1), (3000, 20), (20, 3000), (5, 900)])
def test_clip_preprocessing_of_odd_sizes_matches_transformers(
    checkpoints: Checkpoints, clip_image: ClipImageEncoder, width: int, height: int
) -> None:
    """Strips far longer than the crop resample only the cropped span (see preprocess.py); the
    pixels may then move by one grey level, never more."""
    image = synthetic_image(width, height, seed=height)
    processor = CLIPImageProcessor.from_pretrained(checkpoints.clip)
    expected = processor(images=image, return_tensors="np")["pixel_values"][0]
    one_level = 1 / 255 / min(clip_image.preprocessing.std)
    assert max_diff(clip_image.preprocess(image), expected) <= one_level + 1e-6


def test_warmup_items_run(
    clip_image: ClipImageEncoder,
    clip_text: ClipTextEncoder,
    dinov2: DinoEncoder,
    dinov3: DinoEncoder,
    captioner: BlipCaptioner,
) -> None:
    for model in (clip_image, clip_text, dinov2, dinov3):
        (output,) = run_each(model, [model.warmup_item()])
        assert output.shape == (model.dim,)
        assert np.linalg.norm(output) == pytest.approx(1.0, abs=1e-5)
    (caption,) = run_each(captioner, [captioner.warmup_item()])
    assert isinstance(caption, str)
    assert caption.strip()


# --- BLIP captions ----------------------------------------------------------------------------


def test_blip_preprocessing_equals_transformers(
    checkpoints: Checkpoints, captioner: BlipCaptioner
) -> None:
    image = synthetic_image(97, 61)
    processor = BlipImageProcessor.from_pretrained(checkpoints.blip)
    expected = processor(images=image, return_tensors="np")["pixel_values"][0]
    prepared = captioner.preprocess(CaptionRequest(image))
    assert max_diff(prepared.pixels, expected) == 0.0


@pytest.mark.parametrize("max_length", [2, 5, 20])
def test_caption_respects_max_length(captioner: BlipCaptioner, max_length: int) -> None:
    request = CaptionRequest(synthetic_image(), max_length=max_length)
    prepared = captioner.preprocess(request)
    (raw,) = captioner.forward([prepared])
    caption = captioner.postprocess(raw, prepared)

    assert isinstance(caption, str)
    assert caption == caption.strip() == caption.lower()
    # The tiny BLIP never ends a caption early (see build_tiny_blip), so the limit binds.
    assert len(raw) == max_length
    # Re-tokenising random word pieces can split them further, so count words, which are never
    # more than the generated tokens (the start token is not in the caption).
    assert len(caption.split()) <= max_length - 1
    if max_length > 2:
        assert caption


def test_caption_batch_with_mixed_max_lengths(captioner: BlipCaptioner) -> None:
    images = [synthetic_image(97, 61, 0), synthetic_image(50, 80, 1), synthetic_image(64, 64, 2)]
    requests = [
        CaptionRequest(images[0], max_length=4),
        CaptionRequest(images[1], max_length=9),
        CaptionRequest(images[2], max_length=4),
        CaptionRequest(images[1], max_length=6),
    ]
    prepared: list[PreparedCaption] = [captioner.preprocess(r) for r in requests]
    raw = captioner.forward(prepared)
    assert [len(ids) for ids in raw] == [4, 9, 4, 6]
    batched = [captioner.postprocess(r, p) for r, p in zip(raw, prepared, strict=True)]
    assert batched == run_each(captioner, requests)
    # Same image, longer limit: greedy decoding extends the shorter caption's tokens.
    assert list(raw[1][:6]) == list(raw[3])


def test_caption_max_length_out_of_range_is_refused(captioner: BlipCaptioner) -> None:
    with pytest.raises(InvalidRequestError, match="max_length"):
        CaptionRequest(synthetic_image(), max_length=1)
    assert captioner.longest_max_length == 64  # the tiny text decoder's positions
    (ids,) = captioner.forward([captioner.preprocess(CaptionRequest(synthetic_image(), 64))])
    assert len(ids) == 64
    with pytest.raises(InvalidRequestError, match="max_length 65"):
        captioner.preprocess(CaptionRequest(synthetic_image(), max_length=65))


# --- CPU bf16 autocast (VIEWFINDER_CPU_BF16) ---------------------------------------------------

BF16 = Precision(cpu_bf16_autocast=True)
# bf16 keeps 8 bits of mantissa: embeddings move in the third decimal, directions barely.
BF16_MIN_COSINE = 0.99


@pytest.mark.parametrize(
    ("build", "path_of"),
    [
        (ClipImageEncoder, lambda c: c.clip),
        (DinoEncoder, lambda c: c.dinov2),
        (DinoEncoder, lambda c: c.dinov3),
    ],
    ids=["clip_image", "dinov2", "dinov3"],
)
def test_bf16_autocast_image_embeddings_stay_close_to_fp32(
    checkpoints: Checkpoints, build: Any, path_of: Callable[[Checkpoints], Path]
) -> None:
    images = [synthetic_image(97, 61, 0), synthetic_image(40, 300, 1)]
    exact = run_batch(build(path_of(checkpoints), "cpu", FP32), images)
    fast = run_batch(build(path_of(checkpoints), "cpu", BF16), images)
    for ours, reference in zip(fast, exact, strict=True):
        assert ours.dtype == np.float32
        assert float(np.linalg.norm(ours)) == pytest.approx(1.0, abs=1e-5)
        assert float(ours @ reference) >= BF16_MIN_COSINE
    # Autocast really ran: fp32 would reproduce the reference to ~1e-7.
    assert max_diff(fast, exact) > 1e-4


def test_bf16_autocast_text_embeddings_and_captions(checkpoints: Checkpoints) -> None:
    exact = run_batch(ClipTextEncoder(checkpoints.clip, "cpu", FP32), TEXTS)
    fast = run_batch(ClipTextEncoder(checkpoints.clip, "cpu", BF16), TEXTS)
    assert min(float(a @ b) for a, b in zip(fast, exact, strict=True)) >= BF16_MIN_COSINE
    assert max_diff(fast, exact) > 1e-4

    captioner = BlipCaptioner(checkpoints.blip, "cpu", BF16)
    (caption,) = run_each(captioner, [CaptionRequest(synthetic_image(), max_length=12)])
    assert isinstance(caption, str)


# --- preprocessing configs --------------------------------------------------------------------


def test_preprocessing_reads_both_config_layouts() -> None:
    defaults = ImagePreprocessing()
    # openai/clip-vit-base-patch32's legacy layout: bare integers, shortest edge.
    legacy = preprocessing_from_config(
        {"size": 224, "crop_size": 224, "do_center_crop": True, "resample": 3},
        defaults,
        int_size_is_square=False,
    )
    assert (legacy.shortest_edge, legacy.resize_to, legacy.crop_to) == (224, None, (224, 224))
    # Salesforce/blip-image-captioning-large: a bare integer that means a square.
    blip = preprocessing_from_config({"size": 384}, defaults, int_size_is_square=True)
    assert (blip.shortest_edge, blip.resize_to) == (None, (384, 384))
    no_crop = preprocessing_from_config(
        {"size": {"height": 8, "width": 6}, "crop_size": None, "do_center_crop": False},
        ImagePreprocessing(crop_to=(4, 4)),
        int_size_is_square=False,
    )
    assert (no_crop.resize_to, no_crop.crop_to) == ((8, 6), None)
    assert no_crop(synthetic_image(20, 30)).shape == (3, 8, 6)


def test_preprocessing_refuses_sizes_it_does_not_implement() -> None:
    with pytest.raises(ValueError, match="longest_edge"):
        preprocessing_from_config(
            {"size": {"longest_edge": 512}}, ImagePreprocessing(), int_size_is_square=False
        )


# --- checkpoint builders ----------------------------------------------------------------------


def test_tiny_checkpoints_are_deterministic(tmp_path: Path, checkpoints: Checkpoints) -> None:
    rebuilt = build_tiny_clip(tmp_path / "clip")
    for name in ("model.safetensors", "tokenizer.json", "preprocessor_config.json"):
        first = hashlib.sha256((checkpoints.clip / name).read_bytes()).hexdigest()
        assert hashlib.sha256((rebuilt / name).read_bytes()).hexdigest() == first, name


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_building_leaves_the_global_rng_alone(tmp_path: Path) -> None:
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    build_tiny_dinov2(tmp_path / "dinov2")
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.slow
def test_base_clip_has_vit_b32_dimensions(tmp_path: Path) -> None:
    path = build_clip(tmp_path / "clip-base")
    encoder = ClipImageEncoder(path, "cpu", FP32)
    assert encoder.dim == 512
    assert encoder.preprocessing.shortest_edge == 224
    assert encoder.preprocessing.crop_to == (224, 224)
    (embedding,) = run_each(encoder, [synthetic_image(320, 240)])
    assert_unit_embedding(embedding, 512)
    text = ClipTextEncoder(path, "cpu", FP32)
    (text_embedding,) = run_each(text, ["a photo of a dog"])
    assert_unit_embedding(text_embedding, 512)
