// The Jobs view's sections, drawn from one GET /api/v1/status answer. Every control that can
// hold the focus or be opened carries a data-key, so a refresh can give it back (jobs.js).

import { el, formatDateTime, plural } from "../lib/dom.js";

const KIND_NAMES = {
  embed: "Search embeddings",
  faces: "Faces",
  caption: "Captions",
};
const JOB_NAMES = {
  import_folder: "Import a folder",
  reindex: "Re-index",
  train_classifiers: "Train classifiers",
  faces_cluster_dual: "Organise faces (match and group)",
  faces_organize: "Organise faces",
  faces_train: "Train face matching",
};
const STATE_NAMES = { pending: "Waiting", running: "Running", done: "Done", failed: "Failed" };
const MODEL_PULL = "viewfinder models pull";

function humanise(identifier) {
  const text = String(identifier).replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export const kindName = (kind) => KIND_NAMES[kind] || humanise(kind);
const jobName = (job) =>
  job.kind === "reindex" && job.params?.reembed
    ? "Re-embed every photo"
    : JOB_NAMES[job.kind] || humanise(job.kind);

/** A count as the reader's locale writes it (missing: 0). */
const n = (value) => (value ?? 0).toLocaleString();

function total(counts) {
  return Object.values(counts).reduce((sum, n) => sum + n, 0);
}

/** Anything in progress (or waiting to be): the page then refreshes every 2 s. */
export function isBusy(status) {
  const kindsBusy = status.processing.some(
    (k) => (k.counts.pending || 0) + (k.counts.running || 0) > 0,
  );
  const jobsBusy = status.recent_jobs.some((j) => j.state === "pending" || j.state === "running");
  return kindsBusy || jobsBusy || status.running_jobs.length > 0;
}

// --- the pause banner ---------------------------------------------------------------------------

/** One banner per paused kind, saying why and what to do. Redrawn only when its text changes, so
 * the live region announces a pause once, not at every refresh. */
export function renderBanner(container, status) {
  const paused = status.processing.filter((k) => k.paused);
  const signature = JSON.stringify(paused.map((k) => [k.kind, k.paused_reason, k.pauses.length]));
  if (container.dataset.signature === signature) return;
  container.dataset.signature = signature;
  container.replaceChildren(...paused.map(pauseBanner));
}

function pauseBanner(kind) {
  const name = kindName(kind.kind);
  const reason = kind.paused_reason || "no reason was recorded";
  const pending = kind.counts.pending || 0;
  const workers = kind.pauses.length;
  const who = workers > 1 ? `${workers} workers are` : "The worker is";
  return el(
    "div",
    { class: "banner warn", "data-kind": kind.kind, role: "group", "aria-label": `${name} paused` },
    el("h2", {}, `${name} processing is paused`),
    el("p", { class: "reason" }, `${kind.kind} processing paused: ${reason}`),
    el(
      "p",
      {},
      `${plural(pending, "photo")} waiting. ${who} paused since ` +
        `${formatDateTime(kind.paused_since)} and ${workers > 1 ? "try" : "tries"} again ` +
        "every few seconds.",
    ),
    el("p", { class: "todo" }, ...whatToDo(reason)),
  );
}

/** The next step for a pause's reason: a model that is not there is pulled or pointed at. */
function whatToDo(reason) {
  const setting = reason.match(/VIEWFINDER_[A-Z0-9_]+/)?.[0];
  if (/model not available|not available|cannot be loaded|could not load/i.test(reason)) {
    return [
      el("strong", {}, "What to do: "),
      "make the model available on the server: run ",
      el("code", {}, MODEL_PULL),
      setting ? ", or point " : "",
      setting ? el("code", {}, setting) : "",
      setting ? " at a local copy" : "",
      ". Processing resumes by itself once the model loads; nothing needs restarting.",
    ];
  }
  return [
    el("strong", {}, "What to do: "),
    "fix the cause named above (the worker's log has details); processing resumes by itself.",
  ];
}

// --- processing per kind ------------------------------------------------------------------------

export function renderKinds(body, status) {
  const nodes = [];
  if (status.index_error) nodes.push(el("p", { class: "note error" }, status.index_error));
  else if (status.indexed !== null && status.indexed !== undefined) {
    nodes.push(el("p", { class: "note" }, `${plural(status.indexed, "photo")} searchable.`));
  }
  if (status.partial) {
    nodes.push(
      el(
        "p",
        { class: "note" },
        "This server reports only embedding counts (no failures or pauses).",
      ),
    );
  }
  if (!status.processing.length) {
    nodes.push(
      el("p", { class: "empty" }, "No background work yet: add photos and it starts by itself."),
    );
  } else {
    nodes.push(el("ul", { class: "jobs-kinds" }, ...status.processing.map(kindRow)));
  }
  body.replaceChildren(...nodes);
}

function kindState(kind) {
  if (kind.paused) return ["paused", "Paused"];
  if ((kind.counts.running || 0) + (kind.counts.pending || 0) > 0) return ["working", "Working"];
  if (kind.counts.failed) return ["failed", "Has failures"];
  return ["idle", total(kind.counts) ? "Up to date" : "Nothing to do"];
}

function kindRow(kind) {
  const name = kindName(kind.kind);
  const counts = kind.counts;
  const all = total(counts);
  const settled = (counts.done || 0) + (counts.failed || 0);
  const [state, stateText] = kindState(kind);
  const parts = [`${(counts.done || 0).toLocaleString()} done`];
  for (const key of ["running", "pending", "failed"]) {
    if (counts[key]) parts.push(`${counts[key].toLocaleString()} ${key}`);
  }
  if (kind.retrying) parts.push(`${kind.retrying.toLocaleString()} to retry`);
  const row = el(
    "li",
    { class: "jobs-kind", "data-kind": kind.kind, "data-state": state },
    el(
      "div",
      { class: "row-head" },
      el("h3", {}, name),
      el("span", { class: `badge ${state}` }, stateText),
    ),
    all
      ? el("progress", {
          max: all,
          value: settled,
          "aria-label": `${name}: ${settled.toLocaleString()} of ${all.toLocaleString()} processed`,
        })
      : null,
    el(
      "p",
      { class: "note counts" },
      all
        ? `${parts.join(" · ")} — ${all.toLocaleString()} in all`
        : "0 done — nothing to process yet",
    ),
  );
  if (!kind.configured) {
    row.append(
      el(
        "p",
        { class: "note" },
        "Not processed by this server's settings: these are tasks left from earlier ones.",
      ),
    );
  }
  if (kind.failures.length) row.append(failureList(kind));
  return row;
}

function failureList(kind) {
  const shown = kind.failures.length;
  return el(
    "details",
    { class: "jobs-failures", "data-key": `failures-${kind.kind}` },
    el(
      "summary",
      {},
      `Latest failures (${kind.counts.failed > shown ? `${shown} of ${n(kind.counts.failed)}` : shown})`,
    ),
    el(
      "ul",
      {},
      ...kind.failures.map((f) =>
        el(
          "li",
          {},
          el(
            "a",
            {
              href: `/photos/${f.asset_id}`,
              "data-nav": true,
              "data-key": `failure-${kind.kind}-${f.asset_id}`,
            },
            `Photo ${f.asset_id}`,
          ),
          el("span", { class: "error" }, ` ${f.error || "no error recorded"}`),
          el(
            "span",
            { class: "note" },
            ` · ${plural(f.attempts, "attempt")} · ${formatDateTime(f.failed_at)}`,
          ),
        ),
      ),
    ),
  );
}

// --- jobs ---------------------------------------------------------------------------------------

export function renderJobs(body, status) {
  const running = status.running_jobs;
  const runningIds = new Set(running.map((j) => j.id));
  const recent = status.recent_jobs.filter((j) => !runningIds.has(j.id));
  body.replaceChildren(
    el("h3", {}, "Running"),
    running.length
      ? el("ul", { class: "jobs-list", "aria-label": "Running jobs" }, ...running.map(jobRow))
      : el("p", { class: "note" }, "No job is running."),
    el("h3", {}, "Recent"),
    recent.length
      ? el("ul", { class: "jobs-list", "aria-label": "Recent jobs" }, ...recent.map(jobRow))
      : el(
          "p",
          { class: "note" },
          "No job yet. Imports, re-indexing and organising faces run as jobs.",
        ),
  );
}

function jobRow(job) {
  const name = jobName(job);
  const row = el(
    "li",
    { class: "job", "data-job-id": job.id, "data-state": job.state },
    el(
      "div",
      { class: "row-head" },
      el("h4", {}, name),
      el("span", { class: `badge ${job.state}` }, STATE_NAMES[job.state] || job.state),
      el("span", { class: "note when" }, formatDateTime(job.updated_at)),
    ),
  );
  if (job.state === "pending") {
    row.append(el("p", { class: "note counts" }, "Waiting to start."));
  } else if (job.state === "running") {
    row.append(...runningProgress(job, name));
  }
  if (job.error) row.append(el("p", { class: "error" }, job.error));
  const summary = resultSummary(job);
  if (summary) row.append(el("p", { class: "summary" }, summary));
  row.append(jobDetails(job));
  return row;
}

/** A running job's bar and counts. A folder import counts the files as it walks the folder
 * (its total is what it has seen so far), so its bar is indeterminate and its counts say "so
 * far"; other jobs know their total from the start. */
function runningProgress(job, name) {
  const progress = el("progress", { "aria-label": `${name}: in progress` });
  const settled = job.done + job.failed;
  let counts = "Working…";
  if (job.kind === "import_folder") {
    counts =
      `${plural(job.done, "photo")} imported, ${n(job.failed)} skipped so far ` +
      `(${n(job.total)} files seen)`;
    progress.setAttribute("aria-label", `${name}: ${job.done.toLocaleString()} imported so far`);
  } else if (job.total > 0) {
    progress.max = job.total;
    progress.value = settled;
    progress.setAttribute(
      "aria-label",
      `${name}: ${settled.toLocaleString()} of ${job.total.toLocaleString()}`,
    );
    const failed = job.failed ? ` · ${n(job.failed)} failed` : "";
    counts = `${n(job.done)} of ${n(job.total)} done${failed}`;
  }
  return [progress, el("p", { class: "note counts" }, counts)];
}

/** A job's result in words ("12 added, 3 already there"), by kind; other results by their
 * numeric fields. */
function resultSummary(job) {
  const r = job.result;
  if (!r) return "";
  if (job.kind === "import_folder") {
    const skipped = r.skipped?.length;
    const added = plural(r.created ?? 0, "photo");
    return `${added} added, ${n(r.existing)} already there, ${n(skipped)} skipped`;
  }
  if (job.kind === "reindex") {
    if ("queued" in r) return `${plural(r.queued, "photo")} queued to embed again`;
    return `${n(r.added)} added, ${n(r.removed)} removed, ${n(r.total)} in the index`;
  }
  if (job.kind === "train_classifiers" && Array.isArray(r.collections)) {
    return `${plural(r.collections.length, "collection")} trained`;
  }
  return Object.entries(r)
    .filter(([, v]) => typeof v === "number")
    .slice(0, 6)
    .map(([k, v]) => `${humanise(k)}: ${Number.isInteger(v) ? v.toLocaleString() : v.toFixed(3)}`)
    .join(" · ");
}

function jobDetails(job) {
  const facts = [
    ["Job", job.id],
    ["Created", formatDateTime(job.created_at)],
  ];
  for (const [k, v] of Object.entries(job.params || {})) facts.push([humanise(k), shortValue(v)]);
  const skipped = job.result?.skipped;
  return el(
    "details",
    { class: "job-details", "data-key": `job-${job.id}` },
    el("summary", {}, "Details"),
    el("dl", {}, ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    Array.isArray(skipped) && skipped.length
      ? el(
          "ul",
          { class: "skipped", "aria-label": "Skipped files" },
          ...skipped.slice(0, 20).map((s) => el("li", {}, `${s.path}: ${s.reason}`)),
          skipped.length > 20
            ? el("li", { class: "note" }, `and ${skipped.length - 20} more`)
            : null,
        )
      : null,
  );
}

function shortValue(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "object")
    return Array.isArray(value) ? `${value.length} items` : JSON.stringify(value);
  return String(value);
}

// --- models -------------------------------------------------------------------------------------

export function renderModels(body, status) {
  const models = status.models || [];
  if (!models.length) {
    body.replaceChildren(el("p", { class: "note" }, "This server reports no models."));
    return;
  }
  const loaded = models.filter((m) => m.loaded).length;
  body.replaceChildren(
    el(
      "p",
      { class: "note" },
      `${loaded} of ${models.length} loaded in the API process; models load on first use.`,
    ),
    el("ul", { class: "jobs-models" }, ...models.map(modelCard)),
  );
}

function modelCard(model) {
  const available = model.available !== false;
  const [state, text] = model.loaded
    ? ["ok", "Loaded"]
    : available
      ? ["idle", "Not loaded"]
      : ["error", "Not available"];
  const facts = [["Source", model.source]];
  if (model.setting) facts.push(["Setting", model.setting]);
  if (model.load_seconds != null) facts.push(["Load time", `${model.load_seconds.toFixed(1)} s`]);
  if (model.batches_run) {
    facts.push([
      "Batches",
      `${n(model.batches_run)} (${n(model.items_run)} items, mean ${model.mean_batch.toFixed(1)})`,
    ]);
  }
  return el(
    "li",
    { class: "jobs-model", "data-model": model.name, "data-state": state },
    el(
      "div",
      { class: "row-head" },
      el("h3", {}, model.name),
      el("span", { class: `badge ${state}` }, text),
    ),
    model.description ? el("p", { class: "note" }, model.description) : null,
    model.unavailable_reason ? el("p", { class: "error" }, model.unavailable_reason) : null,
    el("dl", {}, ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { class: "mono" }, v)])),
  );
}
