// The Analyse view (/analyse): drop, paste or choose an image (or give its URL), pick seed 000's
// operations and seed 003's style/mood analysis, and see the results: boxes drawn over the image,
// crops, embeddings summarised, captions, classifier answers, and the prompt streaming in.
//
// Operations come from GET /available_operations/ (the server's registry), so a new operation
// shows up here without a change; only the names and the parameters that matter (collection,
// caption length, where to look for a face) are known to this page.

import { api, isAbort } from "../lib/api.js";
import { el, heading, statusLine, useStyles } from "../lib/dom.js";
import { renderResults } from "./analyse-results.js";
import { streamPrompt } from "./analyse-prompt.js";
import { OPERATION_NAMES, TARGET_NAMES, operationName } from "./analyse-names.js";

// Checked when the page opens: the boxes, one embedding and a caption (cheap and telling).
const DEFAULT_CHOICES = {
  detect_bounding_box: ["prominent_person", "prominent_face"],
  embed_clip_vit_b_32: ["whole_image"],
  describe_image: ["whole_image"],
};
const FACE_CONTEXT_NAMES = {
  prominent_person: "inside the prominent person",
  whole_image: "anywhere in the image",
};

export async function render(root, ctx) {
  useStyles("views/analyse.css");
  const source = imageSource(ctx.signal);
  const operations = el("div", { class: "analyse-operations" }, statusLine("Loading operations…"));
  const seed003 = seed003Fieldset();
  const run = el("button", { class: "primary", type: "submit" }, "Analyse");
  const formStatus = statusLine();
  const form = el(
    "form",
    { class: "panel analyse-form", "aria-labelledby": "analyse-choose" },
    el("h2", { id: "analyse-choose" }, "1. The image"),
    source.element,
    el("h2", {}, "2. What to find"),
    operations,
    seed003.element,
    el("div", { class: "analyse-run" }, run, formStatus),
  );
  const results = el(
    "section",
    { class: "panel analyse-results", "aria-labelledby": "analyse-results-title", hidden: true },
    el("h2", { id: "analyse-results-title", tabindex: "-1" }, "Results"),
  );
  root.append(
    el(
      "div",
      { class: "view-head" },
      heading("Analyse"),
      el(
        "p",
        { class: "note" },
        "Find people and faces, compute embeddings, captions and classifier answers for one " +
          "image, and describe its style and mood. Nothing is added to your library.",
      ),
    ),
    el("div", { class: "analyse-layout" }, form, results),
  );

  const choices = await loadOperations(operations, ctx.signal);
  let running = null; // the AbortController of the analysis in progress

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const image = source.current();
    const tasks = choices ? choices.tasks() : [];
    const prompt = seed003.options();
    if (!image) {
      setStatus(formStatus, "Choose, drop or paste an image, or enter its URL, first.", "error");
      source.focus();
      return;
    }
    if (!tasks.length && !(prompt && image.file)) {
      setStatus(formStatus, "Choose at least one thing to find.", "error");
      return;
    }
    if (running) running.abort();
    running = new AbortController();
    const signal = AbortSignal.any([ctx.signal, running.signal]);
    setStatus(formStatus, "");
    run.disabled = true;
    results.hidden = false;
    const parts = results.querySelectorAll(":scope > :not(h2)");
    for (const part of parts) part.remove();
    const jobs = [];
    if (tasks.length) jobs.push(analyseImage(results, image, tasks, signal));
    if (prompt && image.file) jobs.push(streamPrompt(results, image.file, prompt, signal));
    else if (prompt) {
      results.append(
        statusLine(
          "Style, mood and the prompt need an uploaded image: the server's seed 003 analyzer " +
            "takes uploads only. Choose or drop the file instead of its URL.",
        ),
      );
    }
    results.querySelector("h2").focus({ preventScroll: true });
    results.scrollIntoView({ block: "start", behavior: "smooth" });
    try {
      await Promise.all(jobs);
    } finally {
      run.disabled = false;
    }
  });

  return () => {
    if (running) running.abort();
    source.destroy();
  };
}

function setStatus(line, text, kind = "") {
  line.textContent = text;
  line.className = `note ${kind}`.trim();
}

// --- the image: a file (chosen, dropped or pasted) or a URL -------------------------------------

function imageSource(signal) {
  let file = null;
  let objectUrl = null;
  const input = el("input", {
    id: "analyse-file",
    type: "file",
    accept: "image/*",
    class: "visually-hidden",
  });
  const chosen = el("p", { class: "note", role: "status" }, "No image chosen yet.");
  const preview = el("img", { class: "analyse-thumb", alt: "", hidden: true });
  const url = el("input", {
    id: "analyse-url",
    type: "url",
    inputmode: "url",
    placeholder: "https://…/photo.jpg",
    autocomplete: "off",
    spellcheck: "false",
  });
  const drop = el(
    "div",
    { class: "dropzone analyse-drop" },
    preview,
    el("p", {}, "Drop an image here, paste one (Ctrl+V), or"),
    input,
    el("label", { for: "analyse-file", class: "button" }, "Choose an image"),
    chosen,
  );

  const use = (picked) => {
    if (!picked) return;
    if (!picked.type.startsWith("image/") && picked.type !== "") {
      chosen.textContent = `${picked.name} is not an image (${picked.type}): choose a photo.`;
      chosen.className = "note error";
      return;
    }
    file = picked;
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(picked);
    preview.src = objectUrl;
    preview.hidden = false;
    url.value = "";
    chosen.className = "note";
    const kb = Math.max(1, Math.round(picked.size / 1024));
    chosen.textContent = `Chosen: ${picked.name || "pasted image"} (${kb} KB)`;
  };
  input.addEventListener("change", () => use(input.files[0]));
  url.addEventListener("input", () => {
    if (!url.value.trim() || !file) return;
    // A URL replaces the chosen file: one image at a time.
    file = null;
    input.value = "";
    preview.hidden = true;
    chosen.textContent = "The image at the URL will be analysed.";
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    use(event.dataTransfer.files[0]);
  });
  const onPaste = (event) => {
    const item = [...(event.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (item) {
      event.preventDefault();
      use(item);
    }
  };
  document.addEventListener("paste", onPaste, { signal });

  const element = el(
    "div",
    { class: "analyse-source" },
    drop,
    el(
      "p",
      { class: "field" },
      el("label", { for: "analyse-url" }, "Or the image's URL"),
      url,
      el(
        "span",
        { class: "note" },
        "The server downloads it, from public addresses only unless its " +
          "VIEWFINDER_FETCH_ALLOW_HOSTS allows a host; its answer says why a URL is refused.",
      ),
    ),
  );
  return {
    element,
    current() {
      if (file) return { file, objectUrl };
      const text = url.value.trim();
      return text ? { url: text } : null;
    },
    focus() {
      input.focus();
    },
    destroy() {
      if (objectUrl) URL.revokeObjectURL(objectUrl);
    },
  };
}

// --- seed 000's operations ----------------------------------------------------------------------

async function loadOperations(container, signal) {
  let listed;
  let collections = [];
  try {
    [listed, collections] = await Promise.all([
      api("/available_operations/", { signal }),
      api("/api/v1/collections", { signal }).catch((error) => {
        if (isAbort(error)) throw error;
        return null; // no collections route or no library: classify says so below
      }),
    ]);
  } catch (error) {
    if (isAbort(error)) return null;
    container.replaceChildren(
      statusLine(
        `The operations could not be loaded: ${error.message}. Reload the page to try again.`,
        "error",
      ),
    );
    return null;
  }
  const rows = Object.entries(listed.operations).map(([type, info]) =>
    operationFieldset(type, info, collections),
  );
  container.replaceChildren(...rows.map((r) => r.element));
  return {
    tasks: () => rows.flatMap((r) => r.tasks()),
  };
}

function operationFieldset(type, info, collections) {
  const id = (suffix) => `op-${type}-${suffix}`;
  const defaults = DEFAULT_CHOICES[type] || [];
  const targets = info.allowed_targets.map((target) => {
    const box = el("input", {
      type: "checkbox",
      id: id(target),
      value: target,
      checked: defaults.includes(target),
    });
    return {
      target,
      box,
      label: el("label", { class: "check", for: id(target) }, box, TARGET_NAMES[target] || target),
    };
  });
  const params = [];
  const extras = [];
  if (info.allowed_targets.includes("prominent_face")) {
    const select = el(
      "select",
      { id: id("face-context") },
      ...Object.entries(FACE_CONTEXT_NAMES).map(([value, text]) => el("option", { value }, text)),
    );
    const context = field(id("face-context"), "Look for the face", select);
    // Only a face target reads it: shown while one is chosen.
    const faceBox = targets.find((t) => t.target === "prominent_face").box;
    const sync = () => (context.hidden = !faceBox.checked);
    faceBox.addEventListener("change", sync);
    sync();
    extras.push(context);
    params.push((target, out) => {
      if (target === "prominent_face") out.face_context = select.value;
    });
  }
  if (type === "classify") {
    const { control, read } = collectionChoice(id("collection"), collections);
    extras.push(control);
    params.push((_, out) => {
      const value = read();
      if (value) out.collection_id = Number(value);
    });
  }
  if (type === "describe_image") {
    const length = el("input", {
      id: id("max-length"),
      type: "number",
      min: 1,
      max: 512,
      value: 50,
      inputmode: "numeric",
    });
    extras.push(field(id("max-length"), "Longest caption (tokens)", length));
    params.push((_, out) => {
      if (length.value) out.max_length = Number(length.value);
    });
  }
  const element = el(
    "fieldset",
    { class: "analyse-op", "data-operation": type },
    el("legend", {}, operationName(type)),
    el("p", { class: "note" }, info.description),
    el(
      "div",
      { class: "analyse-targets", role: "group", "aria-label": `${operationName(type)}: on` },
      ...targets.map((t) => t.label),
    ),
    extras.length ? el("div", { class: "analyse-params" }, ...extras) : null,
  );
  return {
    element,
    tasks: () =>
      targets
        .filter((t) => t.box.checked)
        .map(({ target }) => {
          const out = { target };
          for (const add of params) add(target, out);
          return { operation_id: `${type}:${target}`, type, params: out };
        }),
  };
}

function field(id, label, control) {
  return el("p", { class: "field" }, el("label", { for: id }, label), control);
}

/** The collection a classifier answers for; collections with a trained classifier first. */
function collectionChoice(id, collections) {
  if (!collections) {
    return {
      control: el("p", { class: "note" }, "Collections cannot be listed on this server."),
      read: () => "",
    };
  }
  if (!collections.length) {
    return {
      control: el(
        "p",
        { class: "note" },
        "No collection yet: create one on the ",
        el("a", { href: "/collections", "data-nav": true }, "Collections page"),
        " and train its classifier.",
      ),
      read: () => "",
    };
  }
  const sorted = [...collections].sort((a, b) => Number(!a.classifier) - Number(!b.classifier));
  const select = el(
    "select",
    { id },
    ...sorted.map((c) =>
      el(
        "option",
        { value: c.id },
        c.classifier
          ? `${c.name} (classifier ${c.classifier.version})`
          : `${c.name} (no classifier yet)`,
      ),
    ),
  );
  return { control: field(id, "Collection", select), read: () => select.value };
}

// --- seed 003 -----------------------------------------------------------------------------------

function seed003Fieldset() {
  const enabled = el("input", { type: "checkbox", id: "analyse-seed003", checked: true });
  const words = el("textarea", { id: "analyse-user-prompt", rows: 2, maxlength: 4000 });
  const deep = el("input", { type: "checkbox", id: "analyse-deep" });
  const element = el(
    "fieldset",
    { class: "analyse-op", "data-operation": "seed003" },
    el("legend", {}, OPERATION_NAMES.seed003),
    el(
      "label",
      { class: "check", for: "analyse-seed003" },
      enabled,
      "Score style, mood, composition, colours and subjects, and have an LLM write an " +
        "image-generation prompt (uploaded images only)",
    ),
    el(
      "div",
      { class: "analyse-params" },
      field("analyse-user-prompt", "Your own words for the prompt (optional)", words),
      el(
        "label",
        { class: "check", for: "analyse-deep" },
        deep,
        "Deep thinking: a longer, more creative prompt",
      ),
    ),
  );
  return {
    element,
    options: () =>
      enabled.checked ? { userPrompt: words.value.trim(), deepThinking: deep.checked } : null,
  };
}

// --- running seed 000 ---------------------------------------------------------------------------

async function analyseImage(results, image, tasks, signal) {
  const part = el(
    "div",
    { class: "analyse-part", "aria-busy": "true" },
    statusLine(`Analysing: ${tasks.length === 1 ? "1 operation" : `${tasks.length} operations`}…`),
  );
  results.append(part);
  let answer;
  try {
    if (image.file) {
      const form = new FormData();
      form.append("image_file", image.file, image.file.name || "pasted.png");
      form.append("tasks_json", JSON.stringify(tasks));
      answer = await api("/analyze_image_upload/", { method: "POST", form, signal });
    } else {
      answer = await api("/analyze_image/", {
        method: "POST",
        json: { image_url: image.url, tasks },
        signal,
      });
    }
  } catch (error) {
    if (isAbort(error)) return;
    part.removeAttribute("aria-busy");
    const retry = error.retryAfter
      ? ` The server is busy: try again in ${error.retryAfter} s.`
      : "";
    part.replaceChildren(
      el(
        "p",
        { class: "note error analyse-error", role: "alert" },
        `The image was not analysed: ${error.message}.${retry}`,
      ),
    );
    return;
  }
  part.removeAttribute("aria-busy");
  part.replaceChildren(...renderResults(answer, tasks, image.objectUrl || null));
}
