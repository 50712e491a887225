// DOM helpers shared by every view. Server- and user-supplied text (file names, folders, names,
// error details) only ever reaches the page through textContent and setAttribute, never through
// innerHTML: build every node with el().

export const $ = (id) => document.getElementById(id);

/** An element with attributes (set with setAttribute; `true` sets an empty attribute, false,
 * null and undefined set nothing) and children (strings become text nodes). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** A button with a click handler; `label` is its text, attrs may add aria-label, class... */
export function button(label, onClick, attrs = {}) {
  const node = el("button", { type: "button", ...attrs }, label);
  node.addEventListener("click", onClick);
  return node;
}

/** A transient message at the top of the page (errors stay until dismissed). */
export function notify(text, kind = "info") {
  const close = el("button", { type: "button", class: "close", "aria-label": "Dismiss" }, "×");
  const item = el("li", { class: `message ${kind}` }, el("span", {}, text), close);
  close.addEventListener("click", () => item.remove());
  $("messages").append(item);
  if (kind !== "error") setTimeout(() => item.remove(), 6000);
}

/** The view's heading: an h1 that takes focus after navigation (screen readers announce it). */
export function heading(text, level = 1) {
  return el(`h${level}`, { class: "view-title", tabindex: "-1" }, text);
}

export function plural(count, one, many = `${one}s`) {
  return `${count.toLocaleString()} ${count === 1 ? one : many}`;
}

const DATE_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const DATE_TIME_FORMAT = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "short",
});

/** "3 Dec 2026" (or "Unknown date"). */
export function formatDate(value) {
  return value ? DATE_FORMAT.format(new Date(value)) : "Unknown date";
}

export function formatDateTime(value) {
  return value ? DATE_TIME_FORMAT.format(new Date(value)) : "Unknown";
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** The date a photo is shown under: when it was taken, else when it was added. */
export function photoDate(asset) {
  return asset.captured_at || asset.created_at;
}

/** A status line for a region ("Loading…", errors, empty states), announced politely. */
export function statusLine(text = "", kind = "") {
  return el("p", { class: `note ${kind}`.trim(), role: "status" }, text);
}

/** A view's own stylesheet (`views/people.css`), linked once: each view keeps its styles beside
 * its script; app.css holds what views share. */
export function useStyles(path) {
  const href = `/ui/static/${path}`;
  if (document.querySelector(`link[rel="stylesheet"][href="${href}"]`)) return;
  document.head.append(el("link", { rel: "stylesheet", href }));
}
