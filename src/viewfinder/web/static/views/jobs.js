// The Jobs & status view (/jobs): what the background work is doing, from GET /api/v1/status
// (per task kind: counts, failures with their errors, whether it is paused and why; running and
// recent jobs with progress; models), refreshed every 2 s while anything is in progress and
// every 15 s when idle; and the actions the API offers (sync or re-embed the index, organise
// faces, import a server folder).

import { ApiError, api, isAbort } from "../lib/api.js";
import { button, el, heading, notify, statusLine, useStyles } from "../lib/dom.js";
import { isBusy, renderBanner, renderJobs, renderKinds, renderModels } from "./jobs-render.js";

const BUSY_MS = 2000;
const IDLE_MS = 15000;

export async function render(root, ctx) {
  useStyles("views/jobs.css");
  const updated = el("p", { class: "note", "aria-live": "off" });
  const alerts = el("div", { class: "jobs-alerts", "aria-live": "polite" });
  const kinds = section("jobs-processing", "Processing");
  const jobs = section("jobs-jobs", "Jobs");
  const models = section("jobs-models", "Models");
  kinds.body.append(statusLine("Loading the status…"));
  let timer = null;
  let loading = false;

  async function refresh() {
    clearTimeout(timer);
    if (loading || ctx.signal.aborted) return;
    loading = true;
    let busy = false;
    try {
      const status = await loadStatus(ctx.signal);
      keepingFocus(root, () => {
        renderBanner(alerts, status);
        renderKinds(kinds.body, status);
        renderJobs(jobs.body, status);
        renderModels(models.body, status);
      });
      busy = isBusy(status);
      updated.textContent = `Updated ${new Date().toLocaleTimeString()} · refreshes every ${
        (busy ? BUSY_MS : IDLE_MS) / 1000
      } s`;
      updated.className = "note";
    } catch (error) {
      if (isAbort(error)) return;
      updated.textContent = `The status could not be read: ${error.message}. Trying again…`;
      updated.className = "note error";
    } finally {
      loading = false;
    }
    if (!ctx.signal.aborted) timer = setTimeout(refresh, busy ? BUSY_MS : IDLE_MS);
  }

  /** Run an action, say what it started, and show its job at once. */
  const act = (label, path, json, confirmText) => async (event) => {
    if (confirmText && !window.confirm(confirmText)) return;
    const control = event.currentTarget;
    control.disabled = true;
    try {
      await post(path, json, ctx.signal);
      notify(`${label}: started. Its progress is shown below.`);
      window.dispatchEvent(new Event("viewfinder:work"));
    } catch (error) {
      if (!isAbort(error)) notify(`${label} did not start: ${error.message}`, "error");
    } finally {
      control.disabled = false;
    }
    refresh();
  };

  const actions = el(
    "div",
    { class: "actions" },
    button(
      "Sync the search index",
      act("Sync the search index", "/api/v1/reindex", { reembed: false }),
      {
        title: "Bring the search index in step with the stored embeddings",
      },
    ),
    button(
      "Re-embed every photo",
      act(
        "Re-embed every photo",
        "/api/v1/reindex",
        { reembed: true },
        "Embed every photo again? Use this after changing the CLIP model; it takes a while.",
      ),
    ),
    button("Organise faces now", act("Organise faces", "/api/v1/faces/organize", { queue: true }), {
      title: "Match faces to named people and group the unnamed ones",
    }),
    button("Refresh", () => refresh()),
  );

  root.append(
    el("div", { class: "view-head" }, heading("Jobs & status"), actions),
    updated,
    alerts,
    kinds.element,
    jobs.element,
    importPanel(ctx.signal, refresh),
    models.element,
  );
  await refresh();
  return () => clearTimeout(timer);
}

// Where a server predates an action's route, the older route that does the same work.
const OLDER_ROUTES = { "/api/v1/faces/organize": "/api/v1/faces/cluster/dual" };

async function post(path, json, signal) {
  try {
    return await api(path, { method: "POST", json, signal });
  } catch (error) {
    const older = OLDER_ROUTES[path];
    if (!older || !(error instanceof ApiError) || error.status !== 404) throw error;
    return api(older, { method: "POST", json, signal });
  }
}

function section(id, title) {
  const body = el("div", { class: "jobs-body" });
  const element = el(
    "section",
    { class: "panel", "aria-labelledby": id },
    el("h2", { id }, title),
    body,
  );
  return { element, body };
}

/** GET /api/v1/status; on a server without it (404), the older routes in the same shape. */
async function loadStatus(signal) {
  try {
    return await api("/api/v1/status", { signal });
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
  }
  const [processing, jobs, models] = await Promise.all([
    api("/api/v1/jobs/processing", { signal }),
    api("/api/v1/jobs", { signal }),
    api("/api/v1/models", { signal }),
  ]);
  return {
    ready: true,
    processing: [
      {
        kind: processing.kind,
        configured: true,
        counts: processing.counts,
        retrying: 0,
        failures: [],
        paused: false,
        paused_reason: null,
        pauses: [],
      },
    ],
    running_jobs: jobs.filter((j) => j.state === "running"),
    recent_jobs: jobs,
    indexed: processing.indexed,
    index_error: null,
    models,
    partial: true, // this server reports no failures' reasons nor pauses
  };
}

/** Re-render without losing the reader's place: the focused control (by data-key) gets the
 * focus back, and open <details> stay open. */
function keepingFocus(root, draw) {
  const focused = document.activeElement?.closest?.("[data-key]")?.dataset.key;
  const open = new Set(
    [...root.querySelectorAll("details[open][data-key]")].map((d) => d.dataset.key),
  );
  draw();
  for (const details of root.querySelectorAll("details[data-key]")) {
    if (open.has(details.dataset.key)) details.open = true;
  }
  if (focused) {
    const again = [...root.querySelectorAll("[data-key]")].find((n) => n.dataset.key === focused);
    const target = again?.matches("details") ? again.querySelector("summary") : again;
    if (target && document.activeElement !== target) target.focus({ preventScroll: true });
  }
}

// --- importing a server folder ------------------------------------------------------------------

function importPanel(signal, refresh) {
  const path = el("input", {
    id: "jobs-import-path",
    type: "text",
    required: true,
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "/photos/2024 or s3://bucket/prefix",
  });
  const prefix = el("input", {
    id: "jobs-import-prefix",
    type: "text",
    autocomplete: "off",
    placeholder: "e.g. family",
  });
  const result = el("p", { class: "note", role: "status" });
  const form = el(
    "form",
    { class: "search-form" },
    el(
      "p",
      { class: "field grow" },
      el("label", { for: "jobs-import-path" }, "Folder on the server"),
      path,
    ),
    el(
      "p",
      { class: "field" },
      el("label", { for: "jobs-import-prefix" }, "Into library folder (optional)"),
      prefix,
    ),
    el("button", { type: "submit" }, "Import"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    result.textContent = "";
    result.className = "note";
    try {
      const job = await api("/api/v1/imports", {
        method: "POST",
        json: { path: path.value.trim(), folder_prefix: prefix.value.trim() },
        signal,
      });
      result.textContent = `Import started (job ${job.id}): its progress is shown under Jobs.`;
      window.dispatchEvent(new Event("viewfinder:work"));
      refresh();
    } catch (error) {
      if (isAbort(error)) return;
      result.textContent = `Not imported: ${error.message}`;
      result.className = "note error";
    }
  });
  return el(
    "details",
    { class: "panel jobs-import" },
    el("summary", {}, el("h2", { class: "inline" }, "Import a folder from the server")),
    el(
      "p",
      { class: "note" },
      "Adds every image under a folder the server may read (VIEWFINDER_IMPORT_ROOTS) or a " +
        "bucket it may index (VIEWFINDER_IMPORT_BUCKETS), as a background job. Files already " +
        "in the library are recognised and not added twice.",
    ),
    form,
    result,
  );
}
