// What the search view and the collection view's "Add from search" share: the search request
// itself, which filters this server understands, the folder list, and a tile with a checkbox.

import { api } from "../lib/api.js";
import { el, useStyles } from "../lib/dom.js";
import { photoTile } from "../lib/photos.js";

export const PAGE_SIZE = 60;
// The search route pages by offset, up to offset + k = 10,000 (library/search.py).
export const MAX_RESULTS = 10000;

// --- folders ---------------------------------------------------------------------------------

/** Every folder path (with its depth and photo count, subfolders included, when known) from
 * GET /api/v1/folders/tree: `{root: {path, total, children: [...]}}`, the root being "". */
function flattenTree(node, out, depth = 0) {
  if (Array.isArray(node)) {
    for (const child of node) flattenTree(child, out, depth);
    return out;
  }
  if (!node || typeof node !== "object") return out;
  const path = node.path ?? node.folder;
  if (typeof path === "string" && path !== "") {
    const count = node.total ?? node.count ?? null;
    out.push({ path, depth, count: typeof count === "number" ? count : null });
  }
  const children = node.root ?? node.children ?? [];
  const below = typeof path === "string" && path !== "" ? depth + 1 : depth;
  flattenTree(children, out, below);
  return out;
}

const FALLBACK_PAGES = 5; // 5,000 photos: enough to list a small library's folders

/** The library's folders for a filter select: from the folder tree route, or, on a server that
 * does not have it yet, from the folders of the photos themselves (the first 5,000). */
export async function loadFolders(signal) {
  try {
    return flattenTree(await api("/api/v1/folders/tree", { signal }), []);
  } catch (error) {
    if (error.status !== 404 && error.status !== 405) throw error;
  }
  const counts = new Map();
  for (let page = 0; page < FALLBACK_PAGES; page += 1) {
    const body = await api(`/api/v1/assets?limit=1000&offset=${page * 1000}`, { signal });
    for (const asset of body.items) {
      // Every ancestor is a folder too: "nature" holds "nature/birds".
      const parts = asset.folder.split("/").filter(Boolean);
      for (let i = 1; i <= parts.length; i += 1) {
        const path = parts.slice(0, i).join("/");
        counts.set(path, (counts.get(path) || 0) + 1);
      }
    }
    if (body.items.length < 1000) break;
  }
  return [...counts.keys()]
    .sort((a, b) => a.localeCompare(b))
    .map((path) => ({ path, depth: path.split("/").length - 1, count: counts.get(path) }));
}

/** A <select> of folders: "All folders" and every folder, indented by depth. */
export function folderSelect(id, folders, selected = "") {
  const select = el("select", { id, name: "folder" });
  select.append(el("option", { value: "" }, "All folders"));
  const known = new Set(folders.map((f) => f.path));
  if (selected && !known.has(selected)) {
    // From an address: keep it selectable, and honest that the library does not list it.
    folders = [...folders, { path: selected, depth: 0, count: 0 }];
  }
  for (const folder of folders) {
    const name = folder.path.split("/").pop();
    const indent = "\u2003".repeat(folder.depth);
    const count = folder.count === null ? "" : ` (${folder.count.toLocaleString()})`;
    select.append(
      el(
        "option",
        { value: folder.path, selected: folder.path === selected },
        `${indent}${name}${count}`,
      ),
    );
  }
  return select;
}

// --- the request -----------------------------------------------------------------------------

/** Local dates (YYYY-MM-DD) as the API's half-open capture range: the "to" day is included. */
export function dateRange(from, to) {
  const range = {};
  if (from) range.captured_from = `${from}T00:00:00`;
  if (to) {
    const end = new Date(`${to}T00:00:00`);
    end.setDate(end.getDate() + 1);
    const pad = (n) => String(n).padStart(2, "0");
    range.captured_to = `${end.getFullYear()}-${pad(end.getMonth() + 1)}-${pad(end.getDate())}T00:00:00`;
  }
  return range;
}

/** The `sort` to send: null for relevance (the server's default); by filters alone there is no
 * relevance, so newest unless oldest was asked for. */
export function searchOrder(what, sort) {
  if (!what) return sort === "oldest" ? "oldest" : "newest";
  return sort && sort !== "relevance" ? sort : null;
}

/**
 * One page of results. `what` is {query} (text), {assetId} (similar to a stored photo), {file}
 * (an uploaded image) or null (a search by filters alone: the photos that pass them, newest
 * first, or oldest with `sort: "oldest"`; at least one filter must be set);
 * `filters` = {folder, from, to, people: [ids], match: "all" | "any", without: [ids],
 * onlyPeople, collection, minScore, text, objects: [labels], sort}, every one optional.
 * Resolves the server's answer ({hits, k, offset, reason?, message?, sort, total?, ...}).
 */
export async function searchPage(what, filters, offset, k, signal) {
  const range = dateRange(filters.from, filters.to);
  const people = filters.people || [];
  const fields = {
    folder: filters.folder || null,
    ...range,
    // Filters alone rank nothing: no similarity to cut off (the server refuses min_score).
    min_score: what ? (filters.minScore ?? null) : null,
    person_ids: filters.match === "any" ? [] : people,
    any_person_ids: filters.match === "any" ? people : [],
    exclude_person_ids: filters.without || [],
    // "No one else" means nothing without someone chosen (the server asks for one).
    only_people: Boolean(filters.onlyPeople && people.length),
    collection_id: filters.collection || null,
    text: filters.text || null,
    objects: filters.objects || [],
    sort: searchOrder(what, filters.sort),
  };
  if (what && what.file) {
    const form = new FormData();
    form.append("file", what.file);
    form.append("k", String(k));
    form.append("offset", String(offset));
    for (const [name, value] of Object.entries(fields)) {
      if (value === null || value === false) continue;
      for (const item of Array.isArray(value) ? value : [value]) form.append(name, String(item));
    }
    return api("/api/v1/search/image", { method: "POST", form, signal });
  }
  const body = { k, offset };
  if (what && what.query !== undefined) body.query = what.query;
  else if (what) body.asset_id = what.assetId;
  for (const [name, value] of Object.entries(fields)) {
    if (value === null || value === false || (Array.isArray(value) && !value.length)) continue;
    body[name] = value;
  }
  return api("/api/v1/search", { method: "POST", json: body, signal });
}

// --- tiles -----------------------------------------------------------------------------------

/** A search hit's tile (an asset carrying its hit's `score`): the photo link, its score shown on
 * hover and focus (and read as part of its name); a plain tile when `score` is null (a search
 * by filters alone ranks nothing). */
export function scoredTile(asset) {
  if (asset.score === null || asset.score === undefined) return photoTile(asset);
  const score = asset.score.toFixed(3);
  const tile = photoTile(asset, {
    label: `${asset.original_filename}, score ${score}`,
  });
  tile.append(el("span", { class: "badge score", "aria-hidden": "true" }, score));
  return tile;
}

/** A tile with a checkbox beside the photo's link (a link cannot hold a control): `onToggle`
 * gets (asset, checked). */
export function selectableTile(asset, onToggle, { checked = false, label } = {}) {
  useStyles("views/selection.css");
  const link = photoTile(asset, { label });
  link.classList.replace("tile", "tile-link");
  const box = el("input", {
    type: "checkbox",
    class: "tile-check",
    "aria-label": `Select ${asset.original_filename}`,
    checked,
  });
  box.addEventListener("change", () => onToggle(asset, box.checked));
  return el("div", { class: "tile selectable", "data-asset-id": asset.id }, link, box);
}
