// What the viewer shows of a photo's content beyond faces: the text read in it (OCR: `text` in
// the asset's JSON, collapsible and copyable) and the objects detected in it (`objects`: label,
// score, box), listed with their scores, each label a search for photos with it, and drawn as
// boxes over the photo on demand.

import { button, el } from "../lib/dom.js";

const OPEN_TEXT_CHARS = 400; // longer text starts folded: the details below it stay in view

/** A percentage for a score of 0..1 ("93%"). */
function percent(score) {
  return `${Math.round(100 * score)}%`;
}

/** Put `text` on the clipboard; false when the page may not (then the text is selected, for the
 * person to copy with their keys). */
async function copy(text, node) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const range = document.createRange();
    range.selectNodeContents(node);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    return false;
  }
}

/** The text read in the photo, as a disclosure with a "Copy text" button; null when the photo
 * has none (or it was not read). */
export function textSection(asset) {
  const text = typeof asset.text === "string" ? asset.text.trim() : "";
  if (!text) return null;
  const words = text.split(/\s+/).filter(Boolean).length;
  const body = el("pre", { class: "ocr-text", id: "viewer-text-body", tabindex: "0" }, text);
  const result = el("span", { class: "note", role: "status" });
  const copyButton = button("Copy text", async () => {
    const done = await copy(text, body);
    result.textContent = done ? "Copied." : "Selected: press Ctrl+C (⌘C) to copy.";
  });
  return el(
    "details",
    { class: "viewer-section viewer-text", open: text.length <= OPEN_TEXT_CHARS },
    el(
      "summary",
      {},
      el("h2", { id: "viewer-text" }, `Text in the photo (${words.toLocaleString()} words)`),
    ),
    body,
    el("p", { class: "copy-row" }, copyButton, result),
  );
}

/** The labels of `objects`, each once: its best score and how many were found, best first. */
function byLabel(objects) {
  const labels = new Map();
  for (const object of objects) {
    const entry = labels.get(object.label);
    if (entry) {
      entry.count += 1;
      entry.score = Math.max(entry.score, object.score);
    } else labels.set(object.label, { label: object.label, score: object.score, count: 1 });
  }
  return [...labels.values()].sort((a, b) => b.score - a.score);
}

/** The objects detected in the photo: a list of labels with their scores (each a link to every
 * photo with that object, newest first: a search by that filter alone); null when none was
 * detected. */
export function objectsSection(asset) {
  const objects = Array.isArray(asset.objects) ? asset.objects : [];
  if (!objects.length) return null;
  const labels = byLabel(objects);
  return el(
    "section",
    { class: "viewer-section", "aria-labelledby": "viewer-objects" },
    el("h2", { id: "viewer-objects" }, "Objects"),
    el(
      "ul",
      { class: "object-list", "aria-label": "Objects detected in this photo" },
      ...labels.map(({ label, score, count }) =>
        el(
          "li",
          { class: "object-chip" },
          el(
            "a",
            {
              href: `/search?${new URLSearchParams({ objects: label })}`,
              "data-nav": true,
              title: `Photos with ${label}`,
            },
            count > 1 ? `${label} ×${count}` : label,
          ),
          el("span", { class: "object-score" }, ` ${percent(score)}`),
        ),
      ),
    ),
  );
}

/** The objects as labelled boxes over the photo (hidden until toggled), in percent of the
 * original's size like the faces; null when there are none. */
export function objectBoxes(asset) {
  const objects = Array.isArray(asset.objects) ? asset.objects : [];
  if (!objects.length) return null;
  const layer = el("div", { class: "object-boxes off", "aria-hidden": "true" });
  for (const object of objects) {
    const [x1, y1, x2, y2] = object.box;
    const box = el(
      "div",
      { class: "object-box" },
      el("span", { class: "object-name" }, `${object.label} ${percent(object.score)}`),
    );
    box.style.left = `${(100 * x1) / asset.width}%`;
    box.style.top = `${(100 * y1) / asset.height}%`;
    box.style.width = `${(100 * (x2 - x1)) / asset.width}%`;
    box.style.height = `${(100 * (y2 - y1)) / asset.height}%`;
    layer.append(box);
  }
  return layer;
}
