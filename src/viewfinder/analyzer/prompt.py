"""Turning an analysis (and the user's own words) into one image-generation prompt.

An LLM served by Ollama writes it when it can; when Ollama cannot be reached, answers an error,
or answers something that is not a prompt, the prompt is composed deterministically from the
analysis instead, and the result says which of the two paths produced it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import httpx

from viewfinder.analyzer.zero_shot import Analysis

log = logging.getLogger(__name__)

PromptSource = Literal["llm", "fallback"]

OLLAMA_DEFAULT_PORT: Final = 11434
# A stream that never says "done" must not grow without bound (num_predict should stop it long
# before this, but the host might not be Ollama at all).
MAX_LLM_CHARS: Final = 8000
_LABEL_PREFIX = re.compile(r"^\s*(?:image[- ]generation\s+)?prompt\s*:\s*", re.IGNORECASE)
_QUOTE_PAIRS: Final = (('"', '"'), ("'", "'"), ("\u201c", "\u201d"))


class LlmError(Exception):
    """The LLM produced no usable prompt (unreachable, error status, malformed answer)."""


@dataclass(frozen=True)
class PromptToken:
    """A piece of the LLM's answer, as it arrived."""

    text: str


@dataclass(frozen=True)
class WrittenPrompt:
    text: str
    source: PromptSource


def generation_options(deep_thinking: bool) -> dict[str, float | int]:
    """The seed's sampling settings: deeper thinking is more creative and longer."""
    return {
        "temperature": 0.7 if deep_thinking else 0.5,
        "num_predict": 300 if deep_thinking else 150,
    }


def ollama_base_url(host: str) -> str:
    """The base URL for ``OLLAMA_HOST``, read as Ollama's own clients read it: a bare
    ``host[:port]`` (as in ``OLLAMA_HOST=0.0.0.0:11434``) means plain HTTP, port 11434."""
    value = host.strip().rstrip("/")
    if "://" not in value:
        value = f"http://{value}"
        if urlsplit(value).port is None:
            value = f"{value}:{OLLAMA_DEFAULT_PORT}"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"OLLAMA_HOST {host!r} is not an http(s) address of an Ollama server")
    return value


def clean_llm_text(text: str) -> str:
    """The prompt inside an LLM answer: without a leading "Prompt:" label or wrapping quotes,
    which models add although asked not to."""
    cleaned = _LABEL_PREFIX.sub("", text.strip()).strip()
    for opening, closing in _QUOTE_PAIRS:
        if len(cleaned) >= 2 and cleaned.startswith(opening) and cleaned.endswith(closing):
            inner = cleaned[1:-1]
            if opening not in inner and closing not in inner:
                cleaned = inner.strip()
            break
    return cleaned


def llm_instruction(analysis: Analysis, user_prompt: str | None, deep_thinking: bool) -> str:
    """The text sent to the LLM: the analysis with its scores, the user's words, the rules."""
    lines = [
        "You write prompts for text-to-image models.",
        "A CLIP model analysed an image; for each aspect, its best-matching labels with their "
        "probability (0 to 1):",
    ]
    for category, scores in analysis.items():
        described = ", ".join(f"{s.value} ({s.score:.2f})" for s in scores)
        lines.append(f"- {category.replace('_', ' ')}: {described}")
    if user_prompt:
        lines.append(
            f'The user\'s request, which takes priority over the analysis: "{user_prompt}"'
        )
    else:
        lines.append("The user gave no request of their own; describe the analysed image.")
    if deep_thinking:
        length = (
            "Be detailed (up to about 120 words): subject, setting, lighting, colours, "
            "composition, artistic style and medium."
        )
    else:
        length = "Be concise (about 40 to 60 words)."
    lines += [
        "Write exactly one image-generation prompt that combines them. Trust labels with high "
        "probability and ignore unlikely ones.",
        length,
        "Answer with the prompt only: no preamble, no quotes, no lists, no explanation.",
    ]
    return "\n".join(lines)


def fallback_prompt(analysis: Analysis, phrases: Mapping[str, str], user_prompt: str | None) -> str:
    """A prompt composed without an LLM: the user's words, then the best label of every
    category in its configured phrasing (``phrases``: category -> template with ``{label}``)."""
    parts = [user_prompt.strip().rstrip(".,;")] if user_prompt else []
    for category, scores in analysis.items():
        if scores:
            parts.append(phrases.get(category, "{label}").format(label=scores[0].value))
    text = ", ".join(part for part in parts if part)
    return text[:1].upper() + text[1:]


class OllamaClient:
    """Ollama's ``POST /api/generate``, whole or streamed. Every failure is an ``LlmError``.

    The host comes from the operator's settings, never from a request, so no address guard is
    needed; redirects are still never followed, so the request goes to that host or nowhere."""

    def __init__(
        self, host: str, model: str, connect_timeout_s: float, read_timeout_s: float
    ) -> None:
        self.url = f"{ollama_base_url(host)}/api/generate"
        self.model = model
        self._timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)

    def _body(self, prompt: str, deep_thinking: bool, stream: bool) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt": prompt,
            "stream": stream,
            "options": generation_options(deep_thinking),
        }

    async def generate(self, prompt: str, deep_thinking: bool) -> str:
        """The whole answer at once (``"stream": false``)."""
        try:
            async with self._client() as client:
                response = await client.post(
                    self.url, json=self._body(prompt, deep_thinking, stream=False)
                )
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code != httpx.codes.OK:
            raise LlmError(_status_problem(response.status_code, response.content))
        try:
            answer = response.json()
        except ValueError:
            raise LlmError("Ollama's answer is not JSON") from None
        text = answer.get("response") if isinstance(answer, dict) else None
        if not isinstance(text, str):
            raise LlmError("Ollama's answer has no 'response' text")
        return text[:MAX_LLM_CHARS]

    async def stream(self, prompt: str, deep_thinking: bool) -> AsyncIterator[str]:
        """The answer's pieces as Ollama sends them (``"stream": true``, one JSON object per
        line); raises ``LlmError`` if the stream breaks off before its ``"done": true`` line."""
        body = self._body(prompt, deep_thinking, stream=True)
        received = 0
        try:
            async with (
                self._client() as client,
                client.stream("POST", self.url, json=body) as response,
            ):
                if response.status_code != httpx.codes.OK:
                    raise LlmError(_status_problem(response.status_code, await response.aread()))
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    token, done = _stream_line(line)
                    received += len(token)
                    if received > MAX_LLM_CHARS:
                        raise LlmError(f"Ollama's answer exceeds {MAX_LLM_CHARS} characters")
                    if token:
                        yield token
                    if done:
                        return
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        raise LlmError("Ollama's stream ended before its final 'done' line")

    def _unreachable(self, exc: httpx.HTTPError) -> LlmError:
        reason = str(exc) or type(exc).__name__
        return LlmError(f"cannot use Ollama at {self.url}: {reason}")


def _status_problem(status: int, body: bytes) -> str:
    detail = body[:300].decode("utf-8", "replace").strip()
    try:  # Ollama explains errors as {"error": "..."}
        parsed = json.loads(detail)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            detail = parsed["error"]
    except ValueError:
        pass
    return f"Ollama answered HTTP {status}: {detail or 'no detail'}"


def _stream_line(line: str) -> tuple[str, bool]:
    """(text, done) of one line of Ollama's stream."""
    try:
        chunk = json.loads(line)
    except ValueError:
        raise LlmError("Ollama's stream has a line that is not JSON") from None
    if not isinstance(chunk, dict):
        raise LlmError("Ollama's stream has a line that is not a JSON object")
    if "error" in chunk:
        raise LlmError(f"Ollama reported an error mid-stream: {chunk['error']}")
    token = chunk.get("response", "")
    if not isinstance(token, str):
        raise LlmError("Ollama's stream has a 'response' that is not text")
    return token, chunk.get("done") is True


class PromptWriter:
    """Writes the prompt with the LLM, falling back to ``fallback_prompt``."""

    def __init__(self, llm: OllamaClient, phrases: Mapping[str, str]) -> None:
        self._llm = llm
        self._phrases = dict(phrases)

    async def write(
        self, analysis: Analysis, user_prompt: str | None, deep_thinking: bool
    ) -> WrittenPrompt:
        started = time.perf_counter()
        instruction = llm_instruction(analysis, user_prompt, deep_thinking)
        try:
            text = clean_llm_text(await self._llm.generate(instruction, deep_thinking))
        except LlmError as exc:
            return self._fallback(analysis, user_prompt, str(exc))
        if not text:
            return self._fallback(analysis, user_prompt, "Ollama answered an empty prompt")
        log.info("LLM wrote a prompt in %.2fs", time.perf_counter() - started)
        return WrittenPrompt(text, "llm")

    async def stream(
        self, analysis: Analysis, user_prompt: str | None, deep_thinking: bool
    ) -> AsyncIterator[PromptToken | WrittenPrompt]:
        """The LLM's tokens as they arrive, then the finished prompt (always last, always
        once). If the stream breaks off midway, the finished prompt is the fallback one: the
        tokens already sent were provisional."""
        started = time.perf_counter()
        instruction = llm_instruction(analysis, user_prompt, deep_thinking)
        pieces: list[str] = []
        try:
            async for token in self._llm.stream(instruction, deep_thinking):
                pieces.append(token)
                yield PromptToken(token)
        except LlmError as exc:
            yield self._fallback(analysis, user_prompt, str(exc))
            return
        text = clean_llm_text("".join(pieces))
        if not text:
            yield self._fallback(analysis, user_prompt, "Ollama answered an empty prompt")
            return
        log.info("LLM streamed a prompt in %.2fs", time.perf_counter() - started)
        yield WrittenPrompt(text, "llm")

    def _fallback(self, analysis: Analysis, user_prompt: str | None, reason: str) -> WrittenPrompt:
        log.warning("composing the prompt without the LLM: %s", reason)
        return WrittenPrompt(fallback_prompt(analysis, self._phrases, user_prompt), "fallback")
