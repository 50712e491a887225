// Folders (/folders, /folders?path=trips/2024): the folder tree with its counts beside the
// chosen folder's photos (newest first, with or without its subfolders: &sub=0 leaves them out).
// The address holds the folder, so reload and Back keep it. The tree is a nested list of links
// with a disclosure button per folder that has subfolders: Tab reaches every one of them.

import { api, isAbort } from "../lib/api.js";
import { el, heading, plural, statusLine, useStyles } from "../lib/dom.js";
import { PhotoGrid, getViewerList, infiniteScroll, setViewerList } from "../lib/photos.js";
import { navigate } from "../lib/router.js";

const PAGE = 200;
const expanded = new Set(); // folders opened in this tab, kept across navigations

/** The address of a folder: its path kept readable (slashes unescaped). */
function folderHref(path, sub = true) {
  return `/folders?path=${encodeURIComponent(path).replaceAll("%2F", "/")}${sub ? "" : "&sub=0"}`;
}
const rootHref = folderHref("");

function label(node) {
  return node.path === "" ? "Top level" : node.name;
}

/** The tree's list items for `nodes`, the chosen folder marked and its ancestors open. */
function treeItems(nodes, chosen) {
  return nodes.map((node) => {
    const current = chosen !== null && node.path === chosen;
    const link = el(
      "a",
      {
        href: node.path === "" ? rootHref : folderHref(node.path),
        "data-nav": true,
        "aria-current": current ? "page" : null,
      },
      el("span", { class: "folder-name" }, label(node)),
      el(
        "span",
        { class: "folder-count", "aria-label": `, ${plural(node.total, "photo")}` },
        node.total.toLocaleString(),
      ),
    );
    const item = el("li", {}, el("div", { class: "folder-row" }, link));
    if (node.children.length && node.path !== "") {
      const open =
        expanded.has(node.path) || (chosen !== null && chosen.startsWith(`${node.path}/`));
      const children = el("ul", {}, treeItems(node.children, chosen));
      children.hidden = !open;
      const toggle = el(
        "button",
        {
          type: "button",
          class: "disclosure",
          "aria-expanded": String(open),
          "aria-label": `Subfolders of ${node.name}`,
        },
        el("span", { "aria-hidden": "true" }, "▸"),
      );
      toggle.addEventListener("click", () => {
        const show = children.hidden;
        children.hidden = !show;
        toggle.setAttribute("aria-expanded", String(show));
        if (show) expanded.add(node.path);
        else expanded.delete(node.path);
      });
      item.firstChild.prepend(toggle);
      item.append(children);
    } else {
      item.firstChild.prepend(el("span", { class: "disclosure-space", "aria-hidden": "true" }));
    }
    return item;
  });
}

/** Arrow keys in the tree, as in a file manager: Up/Down move between the folders shown,
 * Right opens a folder (or goes to its first subfolder), Left closes it (or goes to its parent).
 * Tab still reaches every link and button. */
function treeKeys(event) {
  const link = event.target.closest(".folder-row a");
  if (!link || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
  const tree = event.currentTarget;
  const item = link.closest("li");
  const toggle = item.querySelector(":scope > .folder-row .disclosure");
  const open = toggle && toggle.getAttribute("aria-expanded") === "true";
  const shown = [...tree.querySelectorAll(".folder-row a")].filter(
    (a) => a.getClientRects().length,
  );
  const at = shown.indexOf(link);
  let target = null;
  if (event.key === "ArrowDown") target = shown[at + 1];
  else if (event.key === "ArrowUp") target = shown[at - 1];
  else if (event.key === "ArrowRight" && toggle) {
    if (!open) toggle.click();
    else target = item.querySelector(":scope > ul .folder-row a");
  } else if (event.key === "ArrowLeft") {
    if (open) toggle.click();
    else target = item.parentElement.closest("li")?.querySelector(":scope > .folder-row a");
  } else return;
  event.preventDefault();
  if (target) target.focus();
}

function findNode(node, path) {
  if (node.path === path) return node;
  for (const child of node.children) {
    if (path === child.path || path.startsWith(`${child.path}/`)) return findNode(child, path);
  }
  return null;
}

/** The chosen folder's ancestors as links: Top level › trips › 2024. */
function breadcrumb(path) {
  const parts = path ? path.split("/") : [];
  const items = [el("li", {}, el("a", { href: rootHref, "data-nav": true }, "Top level"))];
  parts.forEach((part, i) => {
    const at = parts.slice(0, i + 1).join("/");
    items.push(
      el(
        "li",
        {},
        i === parts.length - 1
          ? el("span", { "aria-current": "page" }, part)
          : el("a", { href: folderHref(at), "data-nav": true }, part),
      ),
    );
  });
  return el("nav", { class: "breadcrumb", "aria-label": "Folder path" }, el("ol", {}, items));
}

export async function render(root, { query: params, signal }) {
  useStyles("views/folders.css");
  const chosen = params.has("path") ? params.get("path").replace(/^\/+|\/+$/g, "") : null;
  const withSubfolders = params.get("sub") !== "0";

  const tree = el(
    "nav",
    { class: "folder-tree", "aria-label": "Folders" },
    statusLine("Loading the folders…"),
  );
  const content = el("div", { class: "folder-content" });
  root.append(
    el(
      "div",
      { class: "view-head" },
      heading(chosen === null ? "Folders" : chosen === "" ? "Top level" : chosen.split("/").at(-1)),
    ),
    el("div", { class: "folders-layout" }, tree, content),
  );

  let folderTree = null;
  try {
    folderTree = (await api("/api/v1/folders/tree", { signal })).root;
  } catch (error) {
    if (isAbort(error)) return undefined;
    tree.replaceChildren(statusLine(`Could not load the folders: ${error.message}.`, "error"));
  }
  if (folderTree) {
    if (folderTree.total === 0) {
      tree.replaceChildren(
        statusLine(
          "No folders yet: upload photos into a folder, or index one with viewfinder index DIR.",
        ),
      );
    } else {
      // The root's own photos appear as "Top level" only when there are some.
      const nodes = [
        ...(folderTree.count ? [{ ...folderTree, children: [] }] : []),
        ...folderTree.children,
      ];
      tree.replaceChildren(el("ul", { class: "tree-root" }, treeItems(nodes, chosen)));
      tree.addEventListener("keydown", treeKeys);
    }
  }

  if (chosen === null) {
    const top = folderTree ? folderTree.children : [];
    content.replaceChildren(
      top.length
        ? el("p", { class: "note" }, "Choose a folder to see its photos.")
        : el(
            "p",
            { class: "empty" },
            "Your photos are not in folders. Choose a folder when you upload, or index a folder tree with viewfinder index DIR.",
          ),
    );
    return undefined;
  }

  const node = folderTree ? findNode(folderTree, chosen) : null;
  const count = el("p", { class: "note", id: "folder-count" });
  const sub = el("input", { type: "checkbox", id: "folder-subfolders", checked: withSubfolders });
  sub.addEventListener("change", () =>
    navigate(folderHref(chosen, sub.checked), { replace: true }),
  );
  const subfolders =
    node && node.children.length
      ? el(
          "ul",
          { class: "subfolders", "aria-label": "Subfolders" },
          node.children.map((child) =>
            el(
              "li",
              {},
              el(
                "a",
                { href: folderHref(child.path), "data-nav": true, class: "chip" },
                `${child.name} · ${child.total.toLocaleString()}`,
              ),
            ),
          ),
        )
      : null;
  const grid = new PhotoGrid({ label: `Photos in ${chosen || "the top level"}` });
  const state = el("div");
  const sentinel = el("div", { class: "sentinel" });
  content.replaceChildren(
    ...[
      breadcrumb(chosen),
      el(
        "div",
        { class: "folder-tools" },
        count,
        node && node.children.length
          ? el("label", { class: "check" }, sub, "Include subfolders")
          : null,
      ),
      subfolders,
      grid.element,
      state,
      sentinel,
    ].filter(Boolean), // replaceChildren would show a null as the text "null"
  );

  const ids = [];
  let offset = 0;
  let more = true;
  async function load() {
    if (!more) return false;
    try {
      // Built by hand: query() leaves out empty values, and folder "" is the top level.
      const search = new URLSearchParams({
        folder: chosen,
        include_subfolders: String(withSubfolders),
        sort: "newest",
        limit: String(PAGE),
        offset: String(offset),
      });
      const page = await api(`/api/v1/assets?${search}`, { signal });
      offset += page.items.length;
      more = page.items.length > 0 && offset < page.total;
      grid.add(page.items);
      ids.push(...page.items.map((a) => a.id));
      if (getViewerList().ids === ids) registerList();
      count.textContent = plural(page.total, "photo");
      if (page.total === 0) {
        state.replaceChildren(
          statusLine(
            withSubfolders || !node || !node.children.length
              ? "No photos in this folder. Upload into it from Photos, choosing this folder."
              : "No photos directly in this folder: include the subfolders to see theirs.",
          ),
        );
      }
      return more;
    } catch (error) {
      if (!isAbort(error))
        state.replaceChildren(statusLine(`Could not load the photos: ${error.message}.`, "error"));
      return false;
    }
  }
  // The viewer steps through the loaded photos; registered again after each page (while no
  // other grid has replaced the list) so that it knows when there are no more.
  const registerList = () =>
    setViewerList(
      ids,
      more
        ? async () => {
            const before = ids.length;
            await load();
            return ids.length > before;
          }
        : null,
      chosen || "Top level",
    );
  registerList();
  infiniteScroll(sentinel, load, signal);

  const onDeleted = (event) => {
    const at = ids.indexOf(event.detail.id);
    if (at < 0) return;
    ids.splice(at, 1);
    offset = Math.max(0, offset - 1);
    grid.remove(event.detail.id);
  };
  window.addEventListener("viewfinder:deleted", onDeleted);
  return () => {
    window.removeEventListener("viewfinder:deleted", onDeleted);
    grid.destroy();
  };
}
