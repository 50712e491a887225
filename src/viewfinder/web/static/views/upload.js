// Uploading photos: a file picker (with an optional folder) and drag-and-drop onto a whole view,
// each file its own request so every file gets its own progress bar and result line, and one
// refused file does not refuse the others. XMLHttpRequest, not fetch: only it reports upload
// progress.

import { SESSION_PATH, api, detailText } from "../lib/api.js";
import { button, el, plural } from "../lib/dom.js";

const UPLOAD_PATH = "/api/v1/assets";
const PARALLEL = 2; // enough to keep the server busy without starving the page's other requests

/** POST one file; resolves {status, body} (status 0: the server could not be reached). */
function send(file, folder, onProgress) {
  return new Promise((resolve) => {
    const form = new FormData();
    form.append("files", file, file.name);
    if (folder) form.append("folder", folder);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", UPLOAD_PATH);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      resolve({ status: xhr.status, body });
    });
    xhr.addEventListener("error", () => resolve({ status: 0, body: null }));
    xhr.send(form);
  });
}

/** One line of the log: the file's name, then its progress, then its result. */
function logLine(name) {
  const text = el("span", {}, `Uploading ${name}…`);
  const bar = el("progress", { max: "1", value: "0", "aria-label": `Uploading ${name}` });
  const item = el("li", { class: "busy" }, text, bar);
  return {
    item,
    progress(fraction) {
      bar.value = fraction;
    },
    done(kind, message) {
      item.className = kind;
      bar.remove();
      text.textContent = message;
    },
  };
}

/**
 * The upload controls of a view: `controls` (folder field, picker button) for the view's head,
 * `log` (summary and per-file lines) to place below it, and `dropOn(element)` to accept files
 * dropped anywhere on `element`. `onUploaded(assets)` runs once a batch has finished, with the
 * assets that were stored.
 */
export function uploader({ onUploaded }) {
  const folder = el("input", {
    id: "upload-folder",
    type: "text",
    maxlength: "500",
    placeholder: "Folder (optional)",
    autocomplete: "off",
    spellcheck: "false",
  });
  const input = el("input", {
    id: "file-input",
    type: "file",
    multiple: true,
    accept: "image/*",
    class: "visually-hidden",
  });
  const picker = el("label", { for: "file-input", class: "button primary" }, "Upload");
  const controls = el(
    "div",
    { class: "upload-controls" },
    el("label", { for: "upload-folder", class: "visually-hidden" }, "Upload into folder"),
    folder,
    input,
    picker,
  );

  const summary = el("p", { class: "note", role: "status", id: "upload-summary" });
  const lines = el("ul", { class: "log", id: "upload-log" });
  const clear = button(
    "Clear",
    () => {
      lines.replaceChildren();
      summary.textContent = "";
      log.hidden = true;
    },
    { class: "small" },
  );
  const log = el(
    "section",
    { class: "upload-log panel", "aria-label": "Uploads", hidden: true },
    el("div", { class: "section-head" }, summary, clear),
    lines,
  );

  let running = 0;

  async function upload(files) {
    const list = [...files];
    if (!list.length) return;
    log.hidden = false;
    running += 1;
    clear.disabled = true;
    const into = folder.value.trim();
    const queue = list.map((file) => ({ file, line: logLine(file.name) }));
    for (const { line } of queue) lines.append(line.item);
    const count = queue.length; // `queue` empties as the files go
    let finished = 0;
    let failed = 0;
    const stored = [];
    const report = () => {
      summary.textContent =
        finished < count
          ? `Uploading ${finished + 1} of ${plural(count, "photo")}…`
          : `Uploaded ${plural(count - failed, "photo")}` +
            (failed ? `; ${failed.toLocaleString()} not added (see below).` : ".");
    };
    report();
    const next = async () => {
      while (queue.length) {
        const { file, line } = queue.shift();
        const { status, body } = await send(file, into, (f) => line.progress(f));
        if (status === 201 && Array.isArray(body) && body.length) {
          const [result] = body;
          stored.push(result.asset);
          line.done(
            "ok",
            result.created ? `Added ${file.name}` : `${file.name} was already in your library`,
          );
        } else {
          failed += 1;
          const why =
            status === 0
              ? "the server cannot be reached; check your connection and try again"
              : status === 401
                ? "you are signed out; sign in again and retry"
                : detailText(body, `the server answered ${status}`);
          line.done("error", `${file.name} was not added: ${why}`);
          if (status === 401) api(SESSION_PATH).catch(() => {});
        }
        finished += 1;
        report();
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, count) }, next));
    running -= 1;
    clear.disabled = running > 0;
    input.value = ""; // choosing the same files again uploads them again
    // Processing starts on the server: the header's status follows at once.
    window.dispatchEvent(new Event("viewfinder:work"));
    if (stored.length) onUploaded(stored);
  }

  input.addEventListener("change", () => upload(input.files));

  function dropOn(target) {
    let depth = 0; // dragenter/dragleave fire for every child crossed
    const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
    target.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      depth += 1;
      target.classList.add("dropping");
    });
    target.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault(); // allows the drop
      event.dataTransfer.dropEffect = "copy";
    });
    target.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) target.classList.remove("dropping");
    });
    target.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      target.classList.remove("dropping");
      upload(event.dataTransfer.files);
    });
  }

  return { controls, log, dropOn, upload };
}
