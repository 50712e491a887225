// Seed 000's answer, drawn: the boxes over the image (an SVG in the image's own pixel
// coordinates, so it scales with the displayed image), then one card per operation, in the order
// they were asked for, with its status as the API gives it (success, skipped, error).

import { el, statusLine } from "../lib/dom.js";
import { EMBEDDING_MODELS, operationName, targetName } from "./analyse-names.js";

const SVG = "http://www.w3.org/2000/svg";
const FIRST_VALUES = 8; // of an embedding, shown as numbers
const STRIP_VALUES = 64; // of an embedding, drawn as a strip of bars

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

/** Every element of the results: the annotated image (when it is shown here) and the cards. */
export function renderResults(answer, tasks, imageUrl) {
  const entries = tasks
    .map((task) => ({ task, result: answer.results[task.operation_id] }))
    .filter((e) => e.result);
  const boxes = entries
    .filter(({ task, result }) => task.type === "detect_bounding_box" && isBox(result.data))
    .map(({ task, result }) => ({ target: task.params.target, box: result.data }));
  const nodes = [];
  if (imageUrl) nodes.push(annotatedImage(imageUrl, boxes));
  else {
    nodes.push(
      statusLine(
        "The image is not shown: this page loads pictures only from this server. Boxes are " +
          "listed with their pixel coordinates; upload the file to see them drawn.",
      ),
    );
  }
  const summary = countsLine(entries);
  nodes.push(
    summary,
    el(
      "ul",
      { class: "analyse-cards", "aria-label": "Results by operation" },
      ...entries.map(resultCard),
    ),
  );
  return nodes;
}

function isBox(data) {
  return Array.isArray(data) && data.length === 4 && data.every((v) => typeof v === "number");
}

function countsLine(entries) {
  const by = { success: 0, skipped: 0, error: 0 };
  for (const { result } of entries) by[result.status] = (by[result.status] || 0) + 1;
  const parts = [`${by.success} done`];
  if (by.skipped) parts.push(`${by.skipped} skipped`);
  if (by.error) parts.push(`${by.error} failed`);
  return el("p", { class: "note", role: "status" }, parts.join(" · "));
}

// --- the image and its boxes --------------------------------------------------------------------

function annotatedImage(url, boxes) {
  const overlay = svg("svg", {
    class: "analyse-boxes",
    "aria-hidden": "true",
    preserveAspectRatio: "none",
  });
  const img = el("img", { src: url, alt: describeBoxes(boxes) });
  // The boxes are in the image's pixels: draw once its natural size is known.
  const draw = () => {
    const w = img.naturalWidth;
    const h = img.naturalHeight;
    if (!w || !h) return;
    overlay.setAttribute("viewBox", `0 0 ${w} ${h}`);
    const font = Math.max(12, Math.round(Math.max(w, h) / 45));
    overlay.replaceChildren(...boxes.map((b) => boxShape(b, font, h)));
  };
  if (img.complete) draw();
  else img.addEventListener("load", draw, { once: true });
  const legend = el(
    "ul",
    { class: "analyse-legend" },
    ...boxes.map((b) =>
      el(
        "li",
        { class: `box-key ${b.target}` },
        el("span", { class: "swatch", "aria-hidden": "true" }),
        `${targetName(b.target)}: ${boxText(b.box)}`,
      ),
    ),
  );
  if (!boxes.length) legend.append(el("li", { class: "note" }, "No box was found or asked for."));
  return el(
    "figure",
    { class: "analyse-figure" },
    el("div", { class: "analyse-stage" }, img, overlay),
    el("figcaption", {}, legend),
  );
}

function boxShape({ target, box }, font, height) {
  const [x0, y0, x1, y1] = box;
  const label = targetName(target);
  const labelWidth = Math.round(label.length * font * 0.68 + font * 0.6); // bold: ~0.65 em a letter
  // A person's label sits above its box, a face's below (a face is often at the top of its
  // person, where the two labels would overlap); inside the box at the image's edge.
  const tag = font * 1.4;
  const below = target === "prominent_face";
  let labelY = below ? y1 : y0 - tag;
  if (labelY < 0) labelY = y0;
  if (labelY + tag > height) labelY = y1 - tag;
  return svg(
    "g",
    { class: `box ${target}`, "data-target": target },
    svg("rect", {
      x: x0,
      y: y0,
      width: Math.max(1, x1 - x0),
      height: Math.max(1, y1 - y0),
      class: "frame",
      "vector-effect": "non-scaling-stroke",
    }),
    svg("rect", { x: x0, y: labelY, width: labelWidth, height: tag, class: "tag" }),
    svg(
      "text",
      { x: x0 + font * 0.3, y: labelY + font * 1.05, "font-size": font, class: "tag-text" },
      label,
    ),
  );
}

function boxText([x0, y0, x1, y1]) {
  return `x ${x0}–${x1}, y ${y0}–${y1} (${x1 - x0} × ${y1 - y0} px)`;
}

function describeBoxes(boxes) {
  if (!boxes.length) return "The analysed image";
  return `The analysed image with ${boxes.length === 1 ? "a box" : `${boxes.length} boxes`}: ${boxes
    .map((b) => targetName(b.target))
    .join(", ")}`;
}

// --- one card per operation ---------------------------------------------------------------------

function resultCard({ task, result }) {
  const target = task.params.target;
  const title = `${operationName(task.type)} · ${targetName(target)}`;
  const card = el(
    "li",
    { class: `analyse-card ${result.status}`, "data-operation-id": task.operation_id },
    el(
      "div",
      { class: "card-head" },
      el("h3", {}, title),
      el("span", { class: `badge ${result.status}` }, statusText(result.status)),
    ),
  );
  if (result.status !== "success") {
    card.append(
      el(
        "p",
        { class: result.status === "error" ? "note error" : "note" },
        result.error_message || (result.status === "skipped" ? "Skipped." : "Failed."),
      ),
    );
    return card;
  }
  card.append(...dataView(task, result));
  if (result.cropped_image_base64) {
    card.append(
      el(
        "figure",
        { class: "analyse-crop" },
        el("img", {
          src: `data:image/png;base64,${result.cropped_image_base64}`,
          alt: `The crop used: ${targetName(target).toLowerCase()}`,
        }),
        el(
          "figcaption",
          { class: "note" },
          result.cropped_image_bbox ? `Crop ${boxText(result.cropped_image_bbox)}` : "Crop",
        ),
      ),
    );
  } else if (task.type !== "detect_bounding_box" && target !== "whole_image") {
    card.append(el("p", { class: "note" }, "Nothing found to crop: the whole image was used."));
  }
  return card;
}

function statusText(status) {
  return { success: "Done", skipped: "Skipped", error: "Failed" }[status] || status;
}

function dataView(task, result) {
  const data = result.data;
  if (task.type === "detect_bounding_box") {
    return [el("p", {}, isBox(data) ? boxText(data) : "Nothing found.")];
  }
  if (Array.isArray(data) && data.every((v) => typeof v === "number")) {
    return embeddingView(task.type, data);
  }
  if (task.type === "classify" && data && typeof data === "object") {
    const percent = Math.round((data.probability ?? 0) * 100);
    return [
      el(
        "p",
        { class: "analyse-answer" },
        data.is_in_collection ? "In the collection" : "Not in the collection",
        el("span", { class: "note" }, ` (probability ${percent}%)`),
      ),
    ];
  }
  if (typeof data === "string") return [el("blockquote", { class: "analyse-caption" }, data)];
  return [el("pre", { class: "analyse-raw" }, JSON.stringify(data, null, 2))];
}

/** An embedding summarised: its size, model, norm and first values, and a strip of bars. */
function embeddingView(type, values) {
  const norm = Math.sqrt(values.reduce((sum, v) => sum + v * v, 0));
  const first = values
    .slice(0, FIRST_VALUES)
    .map((v) => v.toFixed(3))
    .join(", ");
  const model = EMBEDDING_MODELS[type];
  const strip = values.slice(0, STRIP_VALUES);
  const peak = Math.max(...strip.map(Math.abs), 1e-9);
  const bars = strip.map((v, i) => {
    const h = (Math.abs(v) / peak) * 10;
    return svg("rect", { x: i, y: v >= 0 ? 10 - h : 10, width: 0.8, height: Math.max(h, 0.2) });
  });
  return [
    el(
      "dl",
      { class: "analyse-facts" },
      el("dt", {}, "Dimensions"),
      el("dd", { class: "dims" }, String(values.length)),
      model ? el("dt", {}, "Model") : null,
      model ? el("dd", {}, model) : null,
      el("dt", {}, "Length (L2)"),
      el("dd", {}, norm.toFixed(3)),
      el("dt", {}, "First values"),
      el("dd", { class: "mono" }, `${first}${values.length > FIRST_VALUES ? ", …" : ""}`),
    ),
    svg(
      "svg",
      {
        class: "analyse-strip",
        viewBox: `0 0 ${strip.length} 20`,
        preserveAspectRatio: "none",
        "aria-hidden": "true",
      },
      ...bars,
    ),
  ];
}
