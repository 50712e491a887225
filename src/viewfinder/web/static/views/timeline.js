// The timeline (/): every photo, newest first, grouped by the day it was taken (the day it was
// added when the photo has no date), each day a justified grid; pages load as the end comes
// into view. A month list jumps through the years. Upload from the head's button or by dropping
// files anywhere on the view; the new photos appear without a reload.

import { api, isAbort, query } from "../lib/api.js";
import {
  button,
  el,
  heading,
  notify,
  photoDate,
  plural,
  statusLine,
  useStyles,
} from "../lib/dom.js";
import { PhotoGrid, getViewerList, infiniteScroll, setViewerList } from "../lib/photos.js";
import { uploader } from "./upload.js";

const PAGE = 200;
const MAX_PAGE = 1000; // the API's largest page: a jump far down loads in few requests
// Days and months in UTC, as the server buckets them (GET /api/v1/timeline): EXIF times carry no
// zone and are stored as UTC, so a photo stays on the day its camera showed wherever it is seen.
const DAY = new Intl.DateTimeFormat(undefined, {
  weekday: "long",
  day: "numeric",
  month: "long",
  year: "numeric",
  timeZone: "UTC",
});
const MONTH = new Intl.DateTimeFormat(undefined, {
  month: "long",
  year: "numeric",
  timeZone: "UTC",
});
const SHORT_MONTH = new Intl.DateTimeFormat(undefined, { month: "short", timeZone: "UTC" });

const pad = (n) => String(n).padStart(2, "0");

/** The day and month a photo is shown under ("2026-12-03", "2026-12"). */
function dayOf(asset) {
  const date = new Date(photoDate(asset));
  const month = `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}`;
  return { date, month, day: `${month}-${pad(date.getUTCDate())}` };
}

/** The photos, in day groups, paged from GET /api/v1/assets?sort=newest. */
class DayGroups {
  constructor(container, signal) {
    this.container = container;
    this.signal = signal;
    this.groups = new Map(); // day -> { section, grid }
    this.ids = []; // the viewer's list: every loaded photo, in page order
    this.offset = 0;
    this.total = null;
    this.more = true;
  }

  /** The next page; resolves true while more pages remain. */
  async load(limit = PAGE) {
    if (!this.more) return false;
    const page = await api(
      `/api/v1/assets${query({ sort: "newest", limit, offset: this.offset })}`,
      {
        signal: this.signal,
      },
    );
    this.total = page.total;
    this.offset += page.items.length;
    this.more = page.items.length > 0 && this.offset < page.total;
    this.add(page.items);
    return this.more;
  }

  add(assets) {
    let run = [];
    let runDay = null;
    const flush = () => {
      if (run.length) this.group(runDay, run[0]).grid.add(run);
      run = [];
    };
    for (const asset of assets) {
      const { day } = dayOf(asset);
      if (day !== runDay) flush();
      runDay = day;
      run.push(asset);
      this.ids.push(asset.id);
    }
    flush();
  }

  group(day, first) {
    let group = this.groups.get(day);
    if (!group) {
      const { date, month } = dayOf(first);
      const title = el("h2", { class: "day-title", id: `day-${day}` }, DAY.format(date));
      const grid = new PhotoGrid({ label: `Photos of ${DAY.format(date)}` });
      const section = el(
        "section",
        { class: "day", "data-day": day, "data-month": month, "aria-labelledby": `day-${day}` },
        title,
        grid.element,
      );
      this.container.append(section);
      group = { section, grid };
      this.groups.set(day, group);
    }
    return group;
  }

  remove(assetId) {
    const index = this.ids.indexOf(assetId);
    if (index < 0) return;
    this.ids.splice(index, 1);
    this.offset = Math.max(0, this.offset - 1); // the next page starts one photo earlier now
    if (this.total !== null) this.total -= 1;
    for (const [day, group] of this.groups) {
      if (!group.grid.assets.some((a) => a.id === assetId)) continue;
      group.grid.remove(assetId);
      if (!group.grid.assets.length) {
        group.grid.destroy();
        group.section.remove();
        this.groups.delete(day);
      }
    }
  }

  destroy() {
    for (const group of this.groups.values()) group.grid.destroy();
  }
}

/** The month list (GET /api/v1/timeline): each month with its count; choosing one loads pages
 * up to that month's first photo (the bucket's offset in the same order) and scrolls to it. */
function monthList(buckets, jump) {
  const years = new Map();
  for (const bucket of buckets) {
    const [year] = bucket.key.split("-");
    if (!years.has(year)) years.set(year, []);
    years.get(year).push(bucket);
  }
  const nav = el("nav", { class: "months", "aria-label": "Jump to a month" });
  for (const [year, months] of years) {
    const items = months.map((bucket) => {
      const date = new Date(`${bucket.key}-15T12:00:00Z`);
      const name = `${MONTH.format(date)}: ${plural(bucket.count, "photo")}`;
      return el(
        "li",
        {},
        button(SHORT_MONTH.format(date), () => jump(bucket), {
          class: "month",
          "aria-label": name,
          title: name,
        }),
      );
    });
    nav.append(
      el("div", { class: "year" }, el("h2", { class: "year-title" }, year), el("ul", {}, items)),
    );
  }
  return nav;
}

export async function render(root, { signal }) {
  useStyles("views/timeline.css");
  const count = el("p", { class: "note", id: "library-count" });
  let groups = null;
  let listController = null;

  const upload = uploader({
    onUploaded: () => {
      // The new photos go wherever their dates put them: list again from the top.
      start();
      loadMonths();
    },
  });
  const head = el(
    "div",
    { class: "view-head" },
    heading("Photos"),
    count,
    el("div", { class: "actions" }, upload.controls),
  );
  const months = el("div", { class: "months-slot" });
  const days = el("div", { class: "days", id: "timeline" });
  const state = el("div", { class: "timeline-state", id: "timeline-state" });
  const sentinel = el("div", { class: "sentinel" });
  const body = el(
    "div",
    { class: "timeline-body" },
    el("div", { class: "timeline-main" }, days, state, sentinel),
    months,
  );
  const view = el("div", { class: "timeline" }, head, upload.log, body);
  root.append(view);
  upload.dropOn(view);

  function showCount() {
    count.textContent = groups.total === null ? "" : plural(groups.total, "photo");
    if (groups.total === 0) {
      state.replaceChildren(
        el(
          "div",
          { class: "empty" },
          el(
            "p",
            {},
            "No photos yet — upload some or run ",
            el("code", {}, "viewfinder index DIR"),
            ".",
          ),
          el(
            "p",
            { class: "note" },
            "Drop photos anywhere on this page, or use the Upload button above.",
          ),
        ),
      );
    } else state.replaceChildren();
  }

  /** The viewer steps through the loaded photos; `more` loads the next page while there is one.
   * Registered again after each page, unless another grid's list has replaced ours. */
  function registerList() {
    const current = groups;
    const more = async () => {
      const before = current.ids.length;
      if (current.more) await loadPage();
      return current.ids.length > before;
    };
    setViewerList(current.ids, current.more ? more : null, "Photos");
  }

  async function loadPage() {
    try {
      const more = await groups.load();
      if (getViewerList().ids === groups.ids) registerList();
      showCount();
      return more;
    } catch (error) {
      if (isAbort(error)) return false;
      state.replaceChildren(
        statusLine(`Could not load your photos: ${error.message}.`, "error"),
        button("Try again", () => start()),
      );
      return false;
    }
  }

  function start() {
    if (listController) listController.abort();
    if (groups) groups.destroy();
    listController = new AbortController();
    signal.addEventListener("abort", () => listController.abort());
    days.replaceChildren();
    state.replaceChildren(statusLine("Loading your photos…"));
    groups = new DayGroups(days, listController.signal);
    registerList();
    infiniteScroll(sentinel, loadPage, listController.signal);
  }

  async function jump(bucket) {
    const current = groups;
    while (current === groups && current.more && current.offset <= bucket.offset) {
      try {
        await current.load(
          Math.min(MAX_PAGE, Math.max(PAGE, bucket.offset + PAGE - current.offset)),
        );
        if (getViewerList().ids === current.ids) registerList();
        showCount();
      } catch (error) {
        if (!isAbort(error)) notify(`Could not load that month: ${error.message}`, "error");
        return;
      }
    }
    const id = current.ids[Math.min(bucket.offset, current.ids.length - 1)];
    const tile = id === undefined ? null : days.querySelector(`[data-asset-id="${id}"]`);
    if (!tile) return;
    tile.closest(".day").scrollIntoView({ block: "start" });
    tile.focus({ preventScroll: true });
  }

  async function loadMonths() {
    try {
      const { buckets } = await api(
        `/api/v1/timeline${query({ granularity: "month", sort: "newest" })}`,
        { signal },
      );
      months.replaceChildren(buckets.length > 1 ? monthList(buckets, jump) : "");
    } catch (error) {
      // An older server without the month counts: the timeline works without the jump list.
      if (!isAbort(error)) months.replaceChildren();
    }
  }

  const onDeleted = (event) => {
    groups.remove(event.detail.id);
    showCount();
  };
  window.addEventListener("viewfinder:deleted", onDeleted);

  start();
  loadMonths();

  return () => {
    window.removeEventListener("viewfinder:deleted", onDeleted);
    if (groups) groups.destroy();
  };
}
