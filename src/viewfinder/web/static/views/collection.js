// One collection: its photos (select some to remove them), "Add photos" (a text search inside
// the page: tick results, add them), and its classifier: train it (a background job whose
// progress shows here) and read the last training report.

import { api, isAbort } from "../lib/api.js";
import {
  button,
  el,
  formatDateTime,
  heading,
  notify,
  plural,
  statusLine,
  useStyles,
} from "../lib/dom.js";
import { PhotoGrid, infiniteScroll, setViewerList } from "../lib/photos.js";
import { classifierLine } from "./collections.js";
import { PAGE_SIZE, searchPage, selectableTile } from "./search-tools.js";

const MEMBERS_PAGE = 100;
const JOB_POLL_MS = 1000;
const FINISHED = new Set(["done", "failed"]);

/** Select-to-act over a grid: which assets are ticked, and a bar that shows while any are. */
class Selection {
  constructor(onChange) {
    this.ids = new Set();
    this.onChange = onChange;
  }

  toggle(asset, checked) {
    if (checked) this.ids.add(asset.id);
    else this.ids.delete(asset.id);
    this.onChange();
  }

  clear(gridElement) {
    this.ids.clear();
    for (const box of gridElement.querySelectorAll(".tile-check")) box.checked = false;
    this.onChange();
  }
}

function reportList(entry) {
  const fmt = (v) => (v === null || v === undefined ? "–" : v.toFixed(3));
  const rows = [
    ["Photos in it (positives)", entry.positives],
    ["Other photos (negatives)", entry.negatives],
  ];
  if (entry.skipped) rows.push(["Not trained", entry.skipped]);
  else {
    rows.push(
      ["Trained on / tested on", `${entry.train_size} / ${entry.test_size}`],
      ["Precision", fmt(entry.precision)],
      ["Recall", fmt(entry.recall)],
      ["Version in use", entry.chosen_version || "–"],
      ["Versions kept", entry.versions_kept],
    );
  }
  return el(
    "dl",
    { class: "report" },
    ...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]),
  );
}

export async function render(root, ctx) {
  useStyles("views/collections.css");
  const id = Number(ctx.params.id);
  const back = el("a", { href: "/collections", "data-nav": true }, "All collections");
  if (!Number.isInteger(id) || id < 1) {
    root.append(
      heading("No such collection"),
      el("p", { class: "note" }, `“${ctx.params.id}” is not a collection number. `, back),
    );
    return undefined;
  }
  let collection;
  try {
    collection = await api(`/api/v1/collections/${id}`, { signal: ctx.signal });
  } catch (error) {
    if (isAbort(error)) return undefined;
    const missing = error.status === 404;
    root.append(
      heading(missing ? "No such collection" : "Collection unavailable"),
      el("p", { class: missing ? "note" : "note error" }, `${error.message}. `, back),
    );
    return undefined;
  }

  // --- head ---------------------------------------------------------------------------------

  const sizeLine = el("p", { class: "note" });
  const showSize = () => {
    sizeLine.textContent = `${plural(collection.size, "photo")} · ${classifierLine(collection.classifier)}`;
  };
  showSize();
  const addToggle = button("Add photos", () => toggleAdd(), {
    "aria-expanded": "false",
    "aria-controls": "add-panel",
  });
  root.append(
    el("p", { class: "note" }, back),
    el(
      "div",
      { class: "view-head collection-head" },
      heading(collection.name),
      el("div", { class: "actions" }, addToggle),
    ),
    sizeLine,
  );
  if (collection.description) root.append(el("p", {}, collection.description));

  // --- add photos: a search inside the page -------------------------------------------------

  const addInput = el("input", {
    id: "add-query",
    type: "search",
    maxlength: "1000",
    autocomplete: "off",
  });
  const addStatus = statusLine("");
  const picked = new Selection(() => {
    addButton.disabled = picked.ids.size === 0;
    addButton.textContent = picked.ids.size
      ? `Add ${plural(picked.ids.size, "photo")}`
      : "Add selected";
  });
  const addGrid = new PhotoGrid({
    label: "Photos to add",
    tile: (a) => selectableTile(a, (x, on) => picked.toggle(x, on)),
  });
  const addButton = button("Add selected", () => addPicked(), { class: "primary", disabled: true });
  const addForm = el(
    "form",
    { class: "search-form", role: "search", "aria-label": "Search for photos to add" },
    el(
      "p",
      { class: "field grow" },
      el("label", { for: "add-query" }, "Find photos to add"),
      addInput,
    ),
    el("button", { type: "submit" }, "Search"),
  );
  const addPanel = el(
    "section",
    { id: "add-panel", class: "panel add-panel", "aria-labelledby": "add-title", hidden: true },
    el("h2", { id: "add-title" }, "Add photos"),
    addForm,
    addStatus,
    el("div", { class: "results" }, addGrid.element),
    el(
      "p",
      { class: "collection-actions" },
      addButton,
      button("Done", () => toggleAdd(false)),
    ),
  );

  function toggleAdd(open = addPanel.hidden) {
    addPanel.hidden = !open;
    addToggle.setAttribute("aria-expanded", String(open));
    if (open) addInput.focus();
    else addToggle.focus();
  }

  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = addInput.value.trim();
    if (!text) return;
    addStatus.textContent = "Searching…";
    addStatus.className = "note";
    addGrid.clear();
    picked.clear(addGrid.element);
    try {
      const page = await searchPage({ query: text }, {}, 0, PAGE_SIZE, ctx.signal);
      addGrid.add(page.hits.map((h) => h.asset));
      addStatus.textContent = page.hits.length
        ? `${plural(page.hits.length, "photo")} for “${text}”: tick the ones to add.`
        : `No photo matches “${text}”.`;
    } catch (error) {
      if (isAbort(error)) return;
      addStatus.textContent = `The search failed: ${error.message}`;
      addStatus.className = "note error";
    }
  });

  async function addPicked() {
    const ids = [...picked.ids];
    addButton.disabled = true;
    try {
      const result = await api(`/api/v1/collections/${id}/assets`, {
        method: "POST",
        json: { asset_ids: ids },
        signal: ctx.signal,
      });
      notify(
        `Added ${plural(result.added, "photo")}${result.added < ids.length ? " (the others were in it already)" : ""}.`,
      );
      collection.size = result.size;
      showSize();
      picked.clear(addGrid.element);
      reloadMembers();
    } catch (error) {
      if (!isAbort(error)) notify(`Could not add the photos: ${error.message}`, "error");
      addButton.disabled = false;
    }
  }

  // --- members: browse, select, remove ------------------------------------------------------

  const chosen = new Selection(() => {
    bar.hidden = chosen.ids.size === 0;
    barText.textContent = `${plural(chosen.ids.size, "photo")} selected`;
  });
  const members = new PhotoGrid({
    label: `Photos in ${collection.name}`,
    tile: (a) => selectableTile(a, (x, on) => chosen.toggle(x, on)),
  });
  const membersStatus = statusLine("");
  const sentinel = el("div", { class: "sentinel" });
  const barText = el("span", {});
  const bar = el(
    "div",
    { class: "selection-bar", hidden: true },
    barText,
    button("Remove from collection", () => removeChosen(), { class: "danger" }),
    button("Clear selection", () => chosen.clear(members.element)),
  );

  let paging = null;

  function reloadMembers() {
    if (paging) paging.abort();
    paging = new AbortController();
    const signal = paging.signal;
    ctx.signal.addEventListener("abort", () => paging.abort());
    members.clear();
    chosen.clear(members.element);
    let offset = 0;
    const ids = [];
    const more = async () => {
      try {
        const page = await api(
          `/api/v1/collections/${id}/assets?limit=${MEMBERS_PAGE}&offset=${offset}`,
          { signal },
        );
        members.add(page);
        offset += page.length;
        for (const asset of page) ids.push(asset.id);
        const hasMore = page.length === MEMBERS_PAGE;
        setViewerList(ids.slice(), hasMore ? more : null, collection.name);
        membersStatus.textContent = offset
          ? ""
          : "No photos in this collection yet. Use “Add photos” to find some and add them.";
        return hasMore;
      } catch (error) {
        if (!isAbort(error)) {
          membersStatus.textContent = `Could not load the photos: ${error.message}`;
          membersStatus.className = "note error";
        }
        return false;
      }
    };
    infiniteScroll(sentinel, more, signal);
  }

  async function removeChosen() {
    const ids = [...chosen.ids];
    if (
      !window.confirm(
        `Remove ${plural(ids.length, "photo")} from ${collection.name}? They stay in your library.`,
      )
    )
      return;
    try {
      const result = await api(`/api/v1/collections/${id}/assets/remove`, {
        method: "POST",
        json: { asset_ids: ids },
        signal: ctx.signal,
      });
      for (const assetId of ids) members.remove(assetId);
      chosen.clear(members.element);
      collection.size = result.size;
      showSize();
      notify(`Removed ${plural(result.removed, "photo")} from ${collection.name}.`);
      root.querySelector(".view-title").focus();
      if (!members.assets.length)
        membersStatus.textContent =
          "No photos in this collection yet. Use “Add photos” to find some and add them.";
    } catch (error) {
      if (!isAbort(error)) notify(`Could not remove the photos: ${error.message}`, "error");
    }
  }

  // --- the classifier -----------------------------------------------------------------------

  const trainButton = button("Train classifier", () => train(), { class: "primary" });
  const progress = el("progress", { max: "1", hidden: true, "aria-label": "Training progress" });
  const trainStatus = statusLine("");
  const report = el("div", { class: "report-holder" });
  const training = el(
    "section",
    { class: "panel training", "aria-labelledby": "training-title" },
    el(
      "div",
      { class: "section-head" },
      el("h2", { id: "training-title" }, "Classifier"),
      trainButton,
    ),
    el(
      "p",
      { class: "note" },
      "Learns what this collection's photos have in common, against every other photo in the library. ",
      "It needs at least two photos in the collection and two outside it, all embedded.",
    ),
    progress,
    trainStatus,
    report,
  );

  function showReport(entry, when) {
    if (!entry) {
      report.replaceChildren(el("p", { class: "note" }, "Not trained yet."));
      return;
    }
    report.replaceChildren(
      el("p", { class: "note" }, `Last training: ${formatDateTime(when)}`),
      reportList(entry),
    );
  }

  async function loadReport() {
    // The report exists once a classifier was trained; asking before would only answer 404.
    if (!collection.classifier) {
      showReport(null);
      return;
    }
    try {
      const last = await api("/api/v1/classifiers/report", { signal: ctx.signal });
      showReport(
        (last.collections || []).find((c) => c.collection_id === id),
        last.trained_at,
      );
    } catch (error) {
      if (isAbort(error)) return;
      if (error.status === 404) showReport(null);
      else
        report.replaceChildren(
          statusLine(`The training report is unavailable: ${error.message}`, "error"),
        );
    }
  }

  async function train() {
    trainButton.disabled = true;
    trainStatus.textContent = "Starting…";
    trainStatus.className = "note";
    try {
      let job = await api("/api/v1/classifiers/train", {
        method: "POST",
        json: { collection_ids: [id], queue: true },
        signal: ctx.signal,
      });
      window.dispatchEvent(new Event("viewfinder:work"));
      progress.hidden = false;
      progress.removeAttribute("value"); // indeterminate until the job counts
      while (!FINISHED.has(job.state)) {
        trainStatus.textContent = job.state === "pending" ? "Waiting for a worker…" : "Training…";
        if (job.total) progress.value = job.done / job.total;
        await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
        if (ctx.signal.aborted) return;
        job = await api(`/api/v1/jobs/${job.id}`, { signal: ctx.signal });
      }
      progress.hidden = true;
      if (job.state === "failed") {
        trainStatus.textContent = `Training failed: ${job.error}`;
        trainStatus.className = "note error";
      } else {
        const entry = (job.result?.collections || []).find((c) => c.collection_id === id);
        trainStatus.textContent =
          entry && entry.skipped ? `Not trained: ${entry.skipped}` : "Trained.";
        trainStatus.className = entry && entry.skipped ? "note error" : "note ok";
        collection = await api(`/api/v1/collections/${id}`, { signal: ctx.signal });
        showSize();
        await loadReport();
      }
    } catch (error) {
      if (isAbort(error)) return;
      progress.hidden = true;
      trainStatus.textContent = `Training did not start: ${error.message}`;
      trainStatus.className = "note error";
    } finally {
      trainButton.disabled = false;
      window.dispatchEvent(new Event("viewfinder:work"));
    }
  }

  root.append(addPanel, membersStatus, members.element, sentinel, bar, training);
  reloadMembers();
  loadReport();
  return () => {
    members.destroy();
    addGrid.destroy();
  };
}
