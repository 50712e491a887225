// Photo grids that keep each photo's aspect ratio (justified rows, like Immich and Google
// Photos), sharp on high-density screens (srcset: the 256 px thumbnail, else the 1024 px
// preview), with infinite scroll, and the list the photo viewer steps through.

import { el, formatDate, photoDate } from "./dom.js";

const THUMBNAIL_SIDE = 256;
const PREVIEW_SIDE = 1024;
const GAP_PX = 4;

/** Row height by screen width: small screens get more, smaller photos per row. */
function targetRowHeight(width) {
  if (width < 480) return 110;
  if (width < 900) return 150;
  return 200;
}

function scaledWidth(asset, side) {
  const longer = Math.max(asset.width, asset.height, 1);
  const scale = Math.min(1, side / longer);
  return Math.max(1, Math.round(asset.width * scale));
}

function aspect(asset) {
  return asset.width > 0 && asset.height > 0 ? asset.width / asset.height : 1;
}

/** One tile: a link to the viewer around the image (alt text: file name and date). */
export function photoTile(asset, { href = `/photos/${asset.id}`, label } = {}) {
  const name = label || `${asset.original_filename}, ${formatDate(photoDate(asset))}`;
  const img = el("img", {
    src: asset.thumbnail_url,
    srcset: `${asset.thumbnail_url} ${scaledWidth(asset, THUMBNAIL_SIDE)}w, ${asset.preview_url} ${scaledWidth(asset, PREVIEW_SIDE)}w`,
    alt: name,
    loading: "lazy",
    decoding: "async",
    width: asset.width,
    height: asset.height,
  });
  return el("a", { class: "tile", href, "data-asset-id": asset.id, "data-nav": true }, img);
}

/**
 * A justified grid: photos in rows of equal height filling the width, each keeping its aspect
 * ratio; the last row keeps the target height. Re-laid out when the width changes.
 */
export class PhotoGrid {
  constructor({ label = "Photos", tile = photoTile } = {}) {
    this.assets = [];
    this.tile = tile;
    this.element = el("div", { class: "justified", role: "list", "aria-label": label });
    this.resize = new ResizeObserver(() => this.layout());
    this.resize.observe(this.element);
    this.lastWidth = 0;
  }

  add(assets) {
    for (const asset of assets) {
      this.assets.push(asset);
      const node = this.tile(asset);
      node.setAttribute("role", "listitem");
      this.element.append(node);
    }
    this.layout(true);
  }

  clear() {
    this.assets = [];
    this.element.replaceChildren();
  }

  remove(assetId) {
    const index = this.assets.findIndex((a) => a.id === assetId);
    if (index < 0) return;
    this.assets.splice(index, 1);
    this.element.children[index].remove();
    this.layout(true);
  }

  layout(force = false) {
    const width = this.element.clientWidth;
    if (!width || (!force && width === this.lastWidth)) return;
    this.lastWidth = width;
    const target = targetRowHeight(window.innerWidth);
    const tiles = this.element.children;
    let row = [];
    let ratioSum = 0;
    const place = (items, height) => {
      for (const index of items) {
        const node = tiles[index];
        const w = Math.floor(aspect(this.assets[index]) * height);
        node.style.width = `${w}px`;
        node.style.height = `${Math.floor(height)}px`;
        const img = node.querySelector("img");
        if (img) img.sizes = `${w}px`;
      }
    };
    for (let i = 0; i < this.assets.length; i += 1) {
      row.push(i);
      ratioSum += aspect(this.assets[i]);
      const rowWidth = ratioSum * target + GAP_PX * (row.length - 1);
      if (rowWidth >= width) {
        const height = (width - GAP_PX * (row.length - 1)) / ratioSum;
        place(row, Math.min(height, target * 2.5));
        row = [];
        ratioSum = 0;
      }
    }
    if (row.length) place(row, target);
  }

  destroy() {
    this.resize.disconnect();
  }
}

/** Call `load` whenever `sentinel` comes near the viewport, until it resolves false (no more)
 * or `signal` aborts. One call at a time. */
export function infiniteScroll(sentinel, load, signal) {
  let busy = false;
  let done = false;
  const observer = new IntersectionObserver(
    async (entries) => {
      if (busy || done || !entries.some((e) => e.isIntersecting)) return;
      busy = true;
      try {
        done = !(await load());
      } finally {
        busy = false;
      }
      if (done) observer.disconnect();
      else {
        // Still visible (a short page): ask again.
        observer.unobserve(sentinel);
        observer.observe(sentinel);
      }
    },
    { rootMargin: "800px 0px" },
  );
  observer.observe(sentinel);
  signal.addEventListener("abort", () => observer.disconnect());
}

// --- the viewer's list ------------------------------------------------------------------------

/** The photos the viewer steps through with previous/next: the grid that opened it registers
 * its ids and, when it has more pages, how to load them (resolving true while more came). */
let viewerList = { ids: [], more: null, label: "" };

export function setViewerList(ids, more = null, label = "") {
  viewerList = { ids, more, label };
}

export function getViewerList() {
  return viewerList;
}
