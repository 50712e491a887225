// Duplicates: groups of near-identical photos (re-encoded or resized copies) side by side with
// what tells them apart (pixels, bytes, date, folder), a suggested keeper, and deletion of the
// others. A group disappears once one photo is left. The similarity threshold is in the address
// (/duplicates?min=0.97).

import { api, isAbort } from "../lib/api.js";
import {
  button,
  el,
  formatBytes,
  formatDateTime,
  heading,
  notify,
  plural,
  statusLine,
  useStyles,
} from "../lib/dom.js";
import { photoTile, setViewerList } from "../lib/photos.js";
import { replaceQuery } from "../lib/router.js";

const DEFAULT_MIN = 0.95; // as VIEWFINDER_DUPLICATE_MIN_SCORE's default

/** The photo to keep: the most pixels, then the earliest (taken, else added), then the first
 * stored. */
export function suggestedKeeper(assets) {
  const time = (a) => Date.parse(a.captured_at || a.created_at) || 0;
  return [...assets].sort(
    (a, b) => b.width * b.height - a.width * a.height || time(a) - time(b) || a.id - b.id,
  )[0];
}

function folderName(folder) {
  return folder ? `/${folder}` : "Top level";
}

export async function render(root, ctx) {
  useStyles("views/duplicates.css");
  const min = Number(ctx.query.get("min"));
  const threshold = min >= 0.8 && min <= 1 ? min : null; // the slider's range
  const slider = el("input", {
    id: "duplicates-min",
    type: "range",
    min: "0.80",
    max: "1",
    step: "0.005",
    value: String(threshold ?? DEFAULT_MIN),
  });
  const shown = el(
    "output",
    { for: "duplicates-min", class: "threshold" },
    (threshold ?? DEFAULT_MIN).toFixed(3),
  );
  const summary = statusLine("Looking for near-duplicates…");
  const list = el("div", { class: "duplicate-groups" });
  root.append(
    el("div", { class: "view-head" }, heading("Duplicates")),
    el(
      "p",
      { class: "note" },
      "Photos whose content is nearly identical: resized, re-encoded or lightly edited copies. ",
      "Keep one of each group and delete the others.",
    ),
    el(
      "p",
      { class: "field duplicates-threshold" },
      el("label", { for: "duplicates-min" }, "How similar (higher: only closer copies)"),
      el("span", { class: "slider-row" }, slider, shown),
    ),
    summary,
    list,
  );

  let groups = [];
  let load = null;

  function registerViewerList() {
    setViewerList(
      groups.flatMap((g) => g.assets.map((a) => a.id)),
      null,
      "Duplicates",
    );
  }

  function updateSummary() {
    if (groups.length) {
      const photos = groups.reduce((n, g) => n + g.assets.length, 0);
      summary.textContent = `${plural(groups.length, "group")} of near-duplicates, ${plural(photos, "photo")}.`;
      summary.className = "note";
    }
  }

  async function showEmpty(signal) {
    let text = `No near-duplicates at similarity ${Number(slider.value).toFixed(3)} or more.`;
    try {
      const status = await api("/api/v1/status", { signal });
      const embed = status.processing?.find((k) => k.kind === "embed");
      const waiting = embed ? (embed.counts.pending || 0) + (embed.counts.running || 0) : 0;
      if (status.indexed === 0 && !waiting)
        text =
          "No photos are indexed yet: upload photos on the Photos page, and duplicates among them show here.";
      else if (waiting)
        text += ` ${plural(waiting, "photo")} still waiting to be embedded are not compared yet.`;
    } catch (error) {
      if (isAbort(error)) return;
    }
    summary.textContent = text;
    summary.className = "note";
    list.replaceChildren(
      el(
        "p",
        { class: "empty" },
        "Nothing to review. Lower the similarity above to find looser matches.",
      ),
    );
  }

  async function refresh() {
    if (load) load.abort();
    load = new AbortController();
    const signal = load.signal;
    ctx.signal.addEventListener("abort", () => load.abort());
    summary.textContent = "Looking for near-duplicates…";
    summary.className = "note";
    list.replaceChildren();
    try {
      // Always the slider's value: the server's own default cannot be read, and what the
      // slider shows must be what was asked.
      const found = await api(`/api/v1/duplicates?min_score=${slider.value}`, { signal });
      groups = await Promise.all(
        found.map(async (group) => ({
          minScore: group.min_score,
          assets: await Promise.all(
            group.asset_ids.map((id) => api(`/api/v1/assets/${id}`, { signal })),
          ),
        })),
      );
      registerViewerList();
      if (!groups.length) return showEmpty(signal);
      updateSummary();
      list.replaceChildren(...groups.map((group, index) => groupSection(group, index)));
    } catch (error) {
      if (isAbort(error)) return;
      summary.textContent = `Could not load the duplicates: ${error.message}`;
      summary.className = "note error";
      list.replaceChildren(button("Try again", () => refresh()));
    }
  }

  /** Delete `assets` (after one confirmation); the group is re-drawn, or goes once resolved. */
  async function remove(group, section, doomed, question) {
    if (!window.confirm(question)) return;
    const buttons = section.querySelectorAll("button");
    for (const b of buttons) b.disabled = true;
    for (const asset of doomed) {
      try {
        await api(`/api/v1/assets/${asset.id}`, { method: "DELETE", signal: ctx.signal });
        group.assets = group.assets.filter((a) => a.id !== asset.id);
      } catch (error) {
        if (isAbort(error)) return;
        // Already gone counts as done; anything else stops here and says so.
        if (error.status === 404) group.assets = group.assets.filter((a) => a.id !== asset.id);
        else {
          notify(`Could not delete ${asset.original_filename}: ${error.message}`, "error");
          break;
        }
      }
    }
    window.dispatchEvent(new Event("viewfinder:work"));
    const index = groups.indexOf(group);
    if (group.assets.length < 2) {
      groups.splice(index, 1);
      // Focus moves on to the next group (or the title): never lost with the removed section.
      const next =
        section.nextElementSibling?.querySelector("h2") || root.querySelector(".view-title");
      section.remove();
      next.focus();
      notify(
        group.assets.length
          ? `Kept ${group.assets[0].original_filename}; the group is resolved.`
          : "Group resolved.",
      );
      if (!groups.length) showEmpty(ctx.signal);
    } else {
      const fresh = groupSection(group, index);
      section.replaceWith(fresh);
      fresh.querySelector("h2").focus();
    }
    registerViewerList();
    updateSummary();
  }

  function groupSection(group, index) {
    const keeper = suggestedKeeper(group.assets);
    const titleId = `duplicate-group-${index}`;
    const section = el("section", { class: "panel duplicate-group", "aria-labelledby": titleId });
    const cards = group.assets.map((asset) => {
      const others = group.assets.filter((a) => a.id !== asset.id);
      const isKeeper = asset.id === keeper.id;
      const keep = button(
        "Keep this one, delete the others",
        () =>
          remove(
            group,
            section,
            others,
            `Keep ${asset.original_filename} and delete ${plural(others.length, "other photo")}? This cannot be undone.`,
          ),
        {
          class: isKeeper ? "primary small" : "small",
          "aria-label": `Keep ${asset.original_filename}, delete the others`,
        },
      );
      const del = button(
        "Delete",
        () =>
          remove(
            group,
            section,
            [asset],
            `Delete ${asset.original_filename}? This cannot be undone.`,
          ),
        { class: "danger small", "aria-label": `Delete ${asset.original_filename}` },
      );
      return el(
        "li",
        { class: `duplicate-card${isKeeper ? " keeper" : ""}` },
        el("div", { class: "duplicate-photo" }, photoTile(asset)),
        isKeeper ? el("p", { class: "keeper-badge" }, "Suggested keeper") : null,
        el(
          "dl",
          { class: "duplicate-facts" },
          el("dt", {}, "File"),
          el("dd", { class: "filename" }, asset.original_filename),
          el("dt", {}, "Pixels"),
          el("dd", {}, `${asset.width.toLocaleString()} × ${asset.height.toLocaleString()}`),
          el("dt", {}, "Size"),
          el("dd", {}, formatBytes(asset.size_bytes)),
          el("dt", {}, asset.captured_at ? "Taken" : "Added"),
          el("dd", {}, formatDateTime(asset.captured_at || asset.created_at)),
          el("dt", {}, "Folder"),
          el("dd", {}, folderName(asset.folder)),
        ),
        el("p", { class: "duplicate-actions" }, keep, del),
      );
    });
    section.append(
      el(
        "h2",
        { id: titleId, tabindex: "-1" },
        // Floored: 0.99999 must not read as "1.000 or more".
        `${plural(group.assets.length, "photo")}, similarity ${(Math.floor(group.minScore * 1000) / 1000).toFixed(3)} or more`,
      ),
      el("ul", { class: "duplicate-cards" }, ...cards),
    );
    return section;
  }

  // The slider reloads when let go (change), not while dragged (input), which only shows it.
  slider.addEventListener("input", () => {
    shown.textContent = Number(slider.value).toFixed(3);
  });
  slider.addEventListener("change", () => {
    replaceQuery(new URLSearchParams({ min: slider.value }));
    refresh();
  });

  refresh();
}
