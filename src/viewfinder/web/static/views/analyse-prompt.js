// Seed 003's analysis, streamed: POST /api/images/analyze-stream answers server-sent events
// (analyzing, analyzed, generating, token..., complete | error). EventSource cannot POST a file,
// so the events are read with fetch and a ReadableStream, and each token is shown as it arrives.

import { detailText } from "../lib/api.js";
import { el, statusLine } from "../lib/dom.js";
import { humanise } from "./analyse-names.js";

const FALLBACK_NOTE =
  "No LLM wrote this prompt: the server could not use Ollama (none answers at its " +
  "VIEWFINDER_OLLAMA_HOST, or it failed), so it composed the prompt from the analysis. To have " +
  "an LLM write it, run Ollama, pull the model named by VIEWFINDER_OLLAMA_MODEL and point " +
  "VIEWFINDER_OLLAMA_HOST at it.";

/** Stream the analysis of `file` into a new part of `results`; resolves when the stream ends. */
export async function streamPrompt(results, file, { userPrompt, deepThinking }, signal) {
  const progress = statusLine("Sending the image…");
  const scores = el("div", { class: "analyse-scores" });
  const prompt = el("p", { class: "analyse-prompt", "data-state": "waiting", "data-tokens": 0 });
  const source = el("p", { class: "note analyse-prompt-source" });
  const part = el(
    "section",
    { class: "analyse-part analyse-seed003", "aria-labelledby": "analyse-seed003-title" },
    el("h3", { id: "analyse-seed003-title" }, "Style, mood and a prompt"),
    progress,
    scores,
    el("h4", {}, "Prompt"),
    prompt,
    source,
  );
  results.append(part);

  const form = new FormData();
  form.append("image", file, file.name || "pasted.png");
  if (userPrompt) form.append("user_prompt", userPrompt);
  form.append("deep_thinking", deepThinking ? "true" : "false");
  let response;
  try {
    response = await fetch("/api/images/analyze-stream", {
      method: "POST",
      body: form,
      headers: { Accept: "text/event-stream" },
      signal,
    });
  } catch (error) {
    if (error.name !== "AbortError") fail(progress, prompt, "the server cannot be reached");
    return;
  }
  if (!response.ok) {
    // Problems with the upload come back before the stream starts, as ordinary errors.
    const body = await response.json().catch(() => null);
    fail(progress, prompt, detailText(body, `${response.status} ${response.statusText}`));
    return;
  }
  const handlers = {
    analyzing: (event) => (progress.textContent = event.message || "Analysing…"),
    analyzed: (event) => scores.replaceChildren(...categoryLists(event.analysis)),
    generating: (event) => {
      progress.textContent = event.message || "Writing the prompt…";
      prompt.dataset.state = "streaming";
      prompt.setAttribute("aria-busy", "true");
    },
    token: (event) => {
      prompt.append(document.createTextNode(event.token));
      prompt.dataset.tokens = String(Number(prompt.dataset.tokens) + 1);
    },
    complete: (event) => {
      // The final prompt is authoritative: a cleaned text, or the fallback if the LLM broke off.
      prompt.textContent = event.generatedPrompt;
      prompt.dataset.state = "complete";
      prompt.dataset.source = event.promptSource;
      prompt.removeAttribute("aria-busy");
      progress.textContent = "Done.";
      if (event.promptSource === "fallback") {
        source.textContent = FALLBACK_NOTE;
        source.classList.add("warn");
      } else source.textContent = "Written by the LLM.";
    },
    error: (event) => fail(progress, prompt, event.message),
  };
  try {
    for await (const event of serverSentEvents(response.body)) {
      const handle = handlers[event.status];
      if (handle) handle(event);
    }
  } catch (error) {
    if (error.name !== "AbortError")
      fail(progress, prompt, `the stream broke off (${error.message})`);
    return;
  }
  if (prompt.dataset.state !== "complete" && prompt.dataset.state !== "error") {
    fail(progress, prompt, "the stream ended before the prompt was complete");
  }
}

function fail(progress, prompt, message) {
  progress.textContent = `Style and mood analysis failed: ${message}`;
  progress.className = "note error";
  progress.setAttribute("role", "alert");
  prompt.dataset.state = "error";
  prompt.removeAttribute("aria-busy");
}

/** The JSON payload of each `data:` event in a text/event-stream body, as it arrives. */
async function* serverSentEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end = buffer.search(/\r?\n\r?\n/);
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      const data = block
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (data) yield JSON.parse(data);
      end = buffer.search(/\r?\n\r?\n/);
    }
  }
}

/** One list per category (style, mood...): each label with its score as a bar and a percent. */
function categoryLists(analysis) {
  return Object.entries(analysis).map(([category, labels]) =>
    el(
      "div",
      { class: "analyse-category", "data-category": category },
      el("h4", {}, humanise(category)),
      el(
        "ul",
        {},
        ...labels.map(({ value, score }) => {
          const bar = el("span", { class: "bar", "aria-hidden": "true" });
          bar.style.width = `${Math.max(1, Math.round(score * 100))}%`;
          return el(
            "li",
            {},
            el("span", { class: "label" }, value),
            el("span", { class: "track", "aria-hidden": "true" }, bar),
            el("span", { class: "score" }, `${Math.round(score * 100)}%`),
          );
        }),
      ),
    ),
  );
}
