// Viewfinder's web UI: plain DOM over the library API on the same origin.
// Server- and user-supplied text (file names, folders, error details) only ever reaches the page
// through textContent and setAttribute: never through innerHTML.

const PAGE_SIZE = 48;
const PROCESSING_POLL_MS = 2000;
const HEALTH_POLL_MS = 30000;

const $ = (id) => document.getElementById(id);

/** An element with attributes (set with setAttribute) and children (strings become text). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

class ApiError extends Error {
  constructor(status, detail, retryAfter) {
    super(detail);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/** The server's `detail`, as text: a string, or FastAPI's list of validation errors. */
function detailText(body, fallback) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => (d && typeof d.msg === "string" ? d.msg : JSON.stringify(d))).join("; ");
  }
  return fallback;
}

const SESSION_PATH = "/api/v1/session";

/** fetch + JSON; a non-2xx answer throws ApiError carrying the server's `detail`. A 401 (no key,
 * or the session ended) also brings the sign-in form back. */
async function api(path, { method = "GET", json, form } = {}) {
  const init = { method, headers: { Accept: "application/json" } };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, "the server cannot be reached", null);
  }
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401 && path !== SESSION_PATH) showSignIn(detailText(body, ""));
    const retry = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    throw new ApiError(
      response.status,
      detailText(body, `${response.status} ${response.statusText}`),
      Number.isFinite(retry) ? retry : null,
    );
  }
  return body;
}

/** A transient message at the top of the page. */
function notify(text, kind = "info") {
  const close = el("button", { type: "button", class: "close", "aria-label": "Dismiss" }, "×");
  const item = el("li", { class: `message ${kind}` }, el("span", {}, text), close);
  close.addEventListener("click", () => item.remove());
  $("messages").append(item);
  if (kind !== "error") setTimeout(() => item.remove(), 6000);
}

// --- assets -------------------------------------------------------------------------------------

const known = new Map(); // asset id -> asset, for names and alt text elsewhere (clusters)

/** One image card: thumbnail (links to the original), name, folder, actions. */
function assetCard(asset, score = null) {
  known.set(asset.id, asset);
  const name = asset.original_filename;
  const img = el("img", {
    src: asset.thumbnail_url,
    alt: name,
    width: asset.width,
    height: asset.height,
    decoding: "async",
  });
  const link = el(
    "a",
    { class: "thumb", href: asset.file_url, target: "_blank", rel: "noopener noreferrer" },
    img,
  );
  const similar = el(
    "button",
    { type: "button", class: "similar", "aria-label": `Find images similar to ${name}` },
    "Similar",
  );
  similar.addEventListener("click", () => findSimilar(asset));
  const remove = el(
    "button",
    { type: "button", class: "delete danger", "aria-label": `Delete ${name}` },
    "Delete",
  );
  remove.addEventListener("click", () => deleteAsset(asset));
  return el(
    "li",
    { class: "card", "data-asset-id": asset.id },
    link,
    el(
      "div",
      { class: "meta" },
      el("p", { class: "name", title: name }, name),
      el("p", { class: "folder" }, asset.folder ? `Folder: ${asset.folder}` : "No folder"),
      score === null ? null : el("p", { class: "score" }, `Score ${score.toFixed(3)}`),
    ),
    el("div", { class: "actions" }, similar, remove),
  );
}

async function deleteAsset(asset) {
  if (!window.confirm(`Delete “${asset.original_filename}”? This cannot be undone.`)) return;
  try {
    await api(`/api/v1/assets/${asset.id}`, { method: "DELETE" });
  } catch (error) {
    notify(`Could not delete “${asset.original_filename}”: ${error.message}`, "error");
    return;
  }
  known.delete(asset.id);
  const inGallery = $("gallery").querySelector(`[data-asset-id="${asset.id}"]`) !== null;
  for (const node of document.querySelectorAll(`[data-asset-id="${asset.id}"]`)) node.remove();
  if (inGallery) {
    gallery.offset -= 1;
    gallery.total -= 1;
    showGalleryCount();
  }
  notify(`Deleted “${asset.original_filename}”.`);
  refreshProcessing();
}

// --- gallery ------------------------------------------------------------------------------------

const gallery = { offset: 0, total: 0, generation: 0 };

function showGalleryCount() {
  const { total } = gallery;
  $("library-count").textContent = `${total} image${total === 1 ? "" : "s"}`;
  $("gallery-empty").hidden = total > 0;
  $("load-more").hidden = gallery.offset >= total;
}

async function loadGallery(reset) {
  if (reset) {
    gallery.generation += 1;
    gallery.offset = 0;
  }
  const generation = gallery.generation;
  const button = $("load-more");
  button.disabled = true;
  try {
    const page = await api(`/api/v1/assets?limit=${PAGE_SIZE}&offset=${gallery.offset}`);
    if (generation !== gallery.generation) return; // a newer reload superseded this one
    if (reset) $("gallery").replaceChildren();
    $("gallery").append(...page.items.map((asset) => assetCard(asset)));
    gallery.offset += page.items.length;
    gallery.total = page.total;
    showGalleryCount();
  } catch (error) {
    notify(`Could not load the library: ${error.message}`, "error");
  } finally {
    button.disabled = false;
  }
}

// --- upload -------------------------------------------------------------------------------------

/** Uploads one file per request, so one refused file (400, 413, 429) does not refuse the rest. */
async function upload(files) {
  const images = Array.from(files);
  if (images.length === 0) return;
  const folder = $("upload-folder").value.trim();
  const log = $("upload-log");
  log.replaceChildren();
  let stored = 0;
  for (const [index, file] of images.entries()) {
    const line = el("li", {}, `Uploading ${index + 1}/${images.length}: ${file.name}…`);
    log.append(line);
    const form = new FormData();
    form.append("files", file, file.name);
    if (folder) form.append("folder", folder);
    try {
      const [result] = await api("/api/v1/assets", { method: "POST", form });
      stored += 1;
      line.className = "ok";
      line.textContent = result.created
        ? `Added ${result.asset.original_filename}`
        : `${result.asset.original_filename} is already in the library`;
    } catch (error) {
      line.className = "error";
      const why = error.status === 429 ? `${error.message} (busy: try again shortly)` : error.message;
      line.textContent = `${file.name} was not added: ${why}`;
    }
  }
  if (stored > 0) {
    await loadGallery(true);
    refreshProcessing();
  }
}

function setUpUpload() {
  const input = $("file-input");
  input.addEventListener("change", async () => {
    const files = Array.from(input.files);
    input.value = "";
    await upload(files);
  });
  const zone = $("dropzone");
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("over"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    upload(event.dataTransfer.files);
  });
}

// --- search -------------------------------------------------------------------------------------

/** Shows search hits under `title`; `source` is the asset of a "similar images" search. */
function showResults(title, hits, source = null) {
  $("results").hidden = false;
  $("results-title").textContent = title;
  const note = $("results-note");
  note.replaceChildren();
  if (source) {
    note.append(
      el("img", { class: "source", src: source.thumbnail_url, alt: source.original_filename }),
      el("span", {}, "The image itself is left out of its own results."),
    );
  }
  if (hits.length === 0) {
    note.append(el("span", {}, " No matches: images are searchable once they are embedded."));
  }
  $("results-grid").replaceChildren(...hits.map((hit) => assetCard(hit.asset, hit.score)));
  $("results-title").focus();
}

async function runSearch(body, title, source = null) {
  $("results").hidden = false;
  $("results-title").textContent = title;
  $("results-note").className = "note";
  $("results-note").textContent = "Searching…";
  $("results-grid").replaceChildren();
  try {
    const found = await api("/api/v1/search", { method: "POST", json: body });
    showResults(title, found.hits, source);
  } catch (error) {
    $("results-note").textContent = `Search failed: ${error.message}`;
    $("results-note").className = "note error";
  }
}

function findSimilar(asset) {
  const k = Number.parseInt($("search-k").value, 10) || 24;
  runSearch({ asset_id: asset.id, k }, `Similar to “${asset.original_filename}”`, asset);
}

function setUpSearch() {
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = $("search-query").value.trim();
    if (!query) return;
    const body = { query, k: Number.parseInt($("search-k").value, 10) || 24 };
    const folder = $("search-folder").value.trim();
    if (folder) body.folder = folder;
    runSearch(body, `Results for “${query}”`);
  });
  $("results-clear").addEventListener("click", () => {
    $("results").hidden = true;
    $("results-grid").replaceChildren();
  });
}

// --- clusters -----------------------------------------------------------------------------------

let clusterRetry = null;

async function loadClusters() {
  clearTimeout(clusterRetry);
  const status = $("clusters-status");
  const button = $("clusters-run");
  button.disabled = true;
  status.className = "note";
  status.textContent = "Grouping images…";
  try {
    const clusters = await api("/clusters");
    status.textContent = clusters.length
      ? `${clusters.length} cluster${clusters.length === 1 ? "" : "s"}.`
      : "No clusters: the library has no embedded images yet.";
    $("clusters").replaceChildren(...clusters.map(clusterGroup));
  } catch (error) {
    if (error.status === 429) {
      const wait = error.retryAfter || 5;
      status.textContent = `Images are still being embedded; trying again in ${wait} s…`;
      clusterRetry = setTimeout(loadClusters, wait * 1000);
    } else {
      status.className = "note error";
      status.textContent = `Could not compute clusters: ${error.message}`;
    }
  } finally {
    button.disabled = false;
  }
}

function clusterGroup(cluster) {
  const count = cluster.image_ids.length;
  const titleId = `cluster-${cluster.cluster_id}`;
  const items = cluster.image_ids.map((id) => {
    const asset = known.get(id);
    const name = asset ? asset.original_filename : `Image ${id}`;
    return el(
      "li",
      { "data-asset-id": id },
      el(
        "a",
        { href: `/api/v1/assets/${id}/file`, target: "_blank", rel: "noopener noreferrer" },
        el("img", { src: `/api/v1/assets/${id}/thumbnail`, alt: name, title: name }),
      ),
    );
  });
  return el(
    "section",
    { class: "cluster", "aria-labelledby": titleId, "data-cluster-id": cluster.cluster_id },
    el("h3", { id: titleId }, `Cluster ${cluster.cluster_id + 1} · ${count} image${count === 1 ? "" : "s"}`),
    el("ul", { class: "strip" }, ...items),
  );
}

// --- people -------------------------------------------------------------------------------------

async function loadPeople() {
  const status = $("people-status");
  status.className = "note";
  status.textContent = "Loading…";
  try {
    const people = await api("/api/v1/persons");
    status.textContent = people.length
      ? `${people.length} named ${people.length === 1 ? "person" : "people"}.`
      : "Nobody is named yet: name face clusters through the faces API.";
    $("people").replaceChildren(
      ...people.map((p) =>
        el("li", {}, el("span", { class: "name" }, p.name), el("span", { class: "note" }, `${p.faces} faces`)),
      ),
    );
  } catch (error) {
    status.className = "note error";
    status.textContent = `Could not load people: ${error.message}`;
  }
}

// --- status -------------------------------------------------------------------------------------

async function checkHealth() {
  const pill = $("health");
  try {
    const health = await api("/health");
    const ok = health && health.status === "ok";
    pill.textContent = ok ? "Server ok" : "Server degraded";
    pill.className = ok ? "pill ok" : "pill warn";
  } catch (error) {
    pill.textContent = `Server unavailable: ${error.message}`;
    pill.className = "pill error";
  }
}

let processingTimer = null;

async function refreshProcessing() {
  clearTimeout(processingTimer);
  const pill = $("processing");
  try {
    const state = await api("/api/v1/jobs/processing");
    const c = state.counts;
    const busy = (c.pending || 0) + (c.running || 0);
    const parts = [`${state.indexed} indexed`];
    if (busy) parts.unshift(`Embedding ${busy} image${busy === 1 ? "" : "s"}…`);
    if (c.failed) parts.push(`${c.failed} failed`);
    pill.textContent = parts.join(" · ");
    pill.className = busy ? "pill busy" : c.failed ? "pill warn" : "pill";
    pill.hidden = false;
    if (busy) processingTimer = setTimeout(refreshProcessing, PROCESSING_POLL_MS);
  } catch (error) {
    pill.textContent = `Processing state unavailable: ${error.message}`;
    pill.className = "pill warn";
    pill.hidden = false;
  }
}

// --- signing in ---------------------------------------------------------------------------------

// The key is sent once, to POST /api/v1/session; the server answers with an HttpOnly cookie that
// the browser sends with every request (<img> URLs included). The key is never stored here.

function showSignIn(why = "") {
  clearTimeout(processingTimer);
  $("content").hidden = true;
  $("identity").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = why;
  $("sign-in-key").focus();
}

function showLibrary(session) {
  $("sign-in").hidden = true;
  $("content").hidden = false;
  const identity = $("identity");
  identity.hidden = !session.authenticated;
  identity.textContent = session.authenticated
    ? `${session.name}${session.read_only ? " · read-only" : ""}`
    : "";
  $("sign-out").hidden = !session.authenticated;
  refreshProcessing();
  loadGallery(true);
}

function setUpSignIn() {
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("sign-in-key");
    const key = input.value.trim();
    if (!key) return;
    $("sign-in-error").textContent = "";
    try {
      const session = await api(SESSION_PATH, { method: "POST", json: { key } });
      input.value = "";
      showLibrary(session);
    } catch (error) {
      $("sign-in-error").textContent = `Not signed in: ${error.message}`;
    }
  });
  $("sign-out").addEventListener("click", async () => {
    try {
      await api(SESSION_PATH, { method: "DELETE" });
    } catch (error) {
      notify(`Could not sign out: ${error.message}`, "error");
      return;
    }
    showSignIn("Signed out.");
  });
}

// --- start --------------------------------------------------------------------------------------

async function start() {
  let session = { keys_required: false, authenticated: false };
  try {
    session = await api(SESSION_PATH);
  } catch (error) {
    notify(`Could not ask the server whether it needs a key: ${error.message}`, "error");
  }
  if (session.keys_required && !session.authenticated) showSignIn();
  else showLibrary(session);
}

setUpSignIn();
setUpUpload();
setUpSearch();
$("load-more").addEventListener("click", () => loadGallery(false));
$("library-refresh").addEventListener("click", () => loadGallery(true));
$("clusters-run").addEventListener("click", loadClusters);
$("people-refresh").addEventListener("click", loadPeople);
checkHealth();
setInterval(checkHealth, HEALTH_POLL_MS);
start();
