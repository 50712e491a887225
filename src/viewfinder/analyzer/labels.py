"""The zero-shot label sets: per category, the labels CLIP chooses between, the sentence each
label is embedded in, and how a chosen label reads inside a composed prompt.

The shipped defaults live in ``default_labels.json`` beside this module; a deployment replaces
them as a whole with its own file of the same shape (``VIEWFINDER_ANALYZER_LABELS``). The file is
validated when the service starts, so a typo fails start-up with the file's name and the problem
instead of surfacing as odd scores later.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

PLACEHOLDER: Final = "{label}"
DEFAULT_LABELS_FILE: Final = "default_labels.json"
SETTING: Final = "VIEWFINDER_ANALYZER_LABELS"
MAX_LABEL_CHARS: Final = 100
MAX_LABELS_PER_CATEGORY: Final = 200
MAX_CATEGORIES: Final = 32

CategoryName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class LabelConfigError(ValueError):
    """The label file cannot be read or is not a valid label configuration."""


def _check_pattern(text: str, what: str) -> str:
    """``text`` must use ``{label}`` and no other replacement field (``{{``/``}}`` are literal
    braces), so ``str.format(label=...)`` can neither fail nor read attributes."""
    if PLACEHOLDER not in text:
        raise ValueError(f"the {what} must contain {PLACEHOLDER}")
    rest = text.replace(PLACEHOLDER, "").replace("{{", "").replace("}}", "")
    if "{" in rest or "}" in rest:
        raise ValueError(
            f"the {what} may use only the {PLACEHOLDER} placeholder (write {{{{ and }}}} for "
            "literal braces)"
        )
    return text


class CategorySpec(BaseModel):
    """One category: CLIP picks among ``labels``, each embedded as ``template``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    template: str = Field(description="Sentence CLIP embeds per label, e.g. 'a {label} photo'.")
    phrase: str = Field(
        PLACEHOLDER,
        description="How a chosen label reads in a composed prompt, e.g. '{label} mood'.",
    )
    labels: tuple[str, ...] = Field(min_length=2, max_length=MAX_LABELS_PER_CATEGORY)

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        return _check_pattern(value, "template")

    @field_validator("phrase")
    @classmethod
    def _phrase(cls, value: str) -> str:
        return _check_pattern(value, "phrase")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(label.strip() for label in value)
        seen: set[str] = set()
        for label in cleaned:
            if not label:
                raise ValueError("labels must not be blank")
            if len(label) > MAX_LABEL_CHARS:
                raise ValueError(f"label {label[:20]!r}... is over {MAX_LABEL_CHARS} characters")
            # CLIP cannot tell "Warm" from "warm": a repeat would only split the score
            if label.casefold() in seen:
                raise ValueError(f"label {label!r} appears more than once")
            seen.add(label.casefold())
        return cleaned

    def prompts(self) -> list[str]:
        """The text CLIP embeds for each label, in label order."""
        return [self.template.format(label=label) for label in self.labels]

    def describe(self, label: str) -> str:
        return self.phrase.format(label=label)


class LabelConfig(BaseModel):
    """Every category, in the order they are reported."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: dict[CategoryName, CategorySpec] = Field(min_length=1, max_length=MAX_CATEGORIES)


def load_label_config(path: Path | None = None) -> LabelConfig:
    """The label configuration from ``path``, or the shipped defaults when ``path`` is None.

    Raises ``LabelConfigError`` naming the file and every problem found in it."""
    if path is None:
        source = f"the shipped {DEFAULT_LABELS_FILE}"
        text = resources.files(__package__).joinpath(DEFAULT_LABELS_FILE).read_text("utf-8")
    else:
        source = f"{SETTING} file {path}"
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise LabelConfigError(f"{source}: cannot read it ({exc})") from None
    try:
        return LabelConfig.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'file'}: {error['msg']}"
            for error in exc.errors()
        )
        raise LabelConfigError(f"{source} is not a valid label configuration: {problems}") from None
