// Client-side addresses: every view has its own URL (reload and Back work). The server answers
// index.html for each section (VIEW_SECTIONS in web/routes.py); this file maps the path to a view
// module under ../views/, loaded on first use.
//
// A view module exports `render(root, ctx)`: it fills `root` and may return a cleanup function,
// called when the view is left. ctx = { params (from the pattern), query (URLSearchParams),
// signal (aborted when the view is left: pass it to api()), path }.
//
// Overlay routes (the photo viewer) render above the current view without tearing it down, so
// closing the viewer returns to the same grid at the same scroll position.

const ROUTES = [
  { pattern: "/", view: "timeline", section: "" },
  { pattern: "/photos/:id", view: "viewer", section: "", overlay: true },
  { pattern: "/folders", view: "folders", section: "folders" },
  { pattern: "/people", view: "people", section: "people" },
  { pattern: "/people/:id", view: "person", section: "people" },
  { pattern: "/search", view: "search", section: "search" },
  { pattern: "/duplicates", view: "duplicates", section: "duplicates" },
  { pattern: "/collections", view: "collections", section: "collections" },
  { pattern: "/collections/:id", view: "collection", section: "collections" },
  { pattern: "/analyse", view: "analyse", section: "analyse" },
  { pattern: "/jobs", view: "jobs", section: "jobs" },
];

function match(path) {
  const parts = path.replace(/\/+$/, "").split("/").slice(1);
  for (const route of ROUTES) {
    const want = route.pattern === "/" ? [] : route.pattern.split("/").slice(1);
    if (want.length !== parts.length) continue;
    const params = {};
    const ok = want.every((segment, i) => {
      if (segment.startsWith(":")) {
        params[segment.slice(1)] = decodeURIComponent(parts[i]);
        return true;
      }
      return segment === parts[i];
    });
    if (ok) return { route, params };
  }
  return null;
}

let root = null; // <main>: the page's view
let overlayRoot = null; // the viewer's layer, created on demand
let current = null; // { path, cleanup, controller } of the page view
let overlay = null; // the same for the overlay, when one is open
let onSection = () => {};
let inAppNavigations = 0; // how many entries this tab pushed: Back can close an overlay

/** Go to an app address (pushes a history entry unless `replace`). */
export function navigate(url, { replace = false } = {}) {
  const target = new URL(url, location.origin);
  if (target.origin !== location.origin) {
    location.assign(target.href);
    return;
  }
  if (replace) history.replaceState({}, "", target.pathname + target.search + target.hash);
  else {
    history.pushState({}, "", target.pathname + target.search + target.hash);
    inAppNavigations += 1;
  }
  render();
}

/** Change the current address's query (e.g. a search's filters) without re-rendering. */
export function replaceQuery(params) {
  const search = params.toString();
  history.replaceState(history.state, "", location.pathname + (search ? `?${search}` : ""));
}

/** Leave an overlay: Back when this tab opened it (the grid is underneath), else `fallback`. */
export function closeOverlay(fallback = "/") {
  if (inAppNavigations > 0) history.back();
  else navigate(fallback, { replace: true });
}

function teardown(state) {
  if (!state) return;
  state.controller.abort();
  if (typeof state.cleanup === "function") {
    try {
      state.cleanup();
    } catch (error) {
      console.error(error);
    }
  }
}

async function load(route, params, target) {
  const module = await import(`../views/${route.view}.js`);
  const controller = new AbortController();
  const state = { path: location.pathname + location.search, controller, cleanup: null };
  const ctx = {
    params,
    query: new URLSearchParams(location.search),
    signal: controller.signal,
    path: location.pathname,
  };
  // Each load renders into its own container: a view still loading when the address changes
  // again keeps writing into its detached container, never into the view that replaced it.
  const container = document.createElement("div");
  container.className = "view-root";
  target.replaceChildren(container);
  state.cleanup = await module.render(container, ctx);
  return state;
}

let generation = 0; // bumped by every render(): a load that finishes late is torn down

/** Keep `state` if no render started since `mine`; else tear it down and return null. */
function stillCurrent(state, mine) {
  if (mine === generation) return state;
  teardown(state);
  return null;
}

function notFound() {
  const title = document.createElement("h1");
  title.className = "view-title";
  title.tabIndex = -1;
  title.textContent = "Nothing here";
  const note = document.createElement("p");
  note.className = "note";
  note.textContent = `There is no page at ${location.pathname}. `;
  const home = document.createElement("a");
  home.href = "/";
  home.dataset.nav = "";
  home.textContent = "Go to your photos";
  note.append(home);
  root.replaceChildren(title, note);
}

function focusTitle(target) {
  const title = target.querySelector(".view-title");
  if (title) title.focus({ preventScroll: true });
}

/** Render whatever the address names. */
export async function render() {
  generation += 1;
  const mine = generation;
  const found = match(location.pathname);
  if (!found) {
    teardown(overlay);
    overlay = null;
    teardown(current);
    current = null;
    notFound();
    onSection(null);
    return;
  }
  const { route, params } = found;
  onSection(route.section);
  if (route.overlay) {
    teardown(overlay);
    if (!overlayRoot) {
      overlayRoot = document.createElement("div");
      overlayRoot.id = "overlay";
      document.body.append(overlayRoot);
    }
    overlayRoot.hidden = false;
    document.body.classList.add("has-overlay");
    root.inert = true;
    const opened = stillCurrent(await load(route, params, overlayRoot), mine);
    if (opened) overlay = opened;
    return;
  }
  if (overlay || (overlayRoot && !overlayRoot.hidden)) {
    // Open, or still loading (Back pressed before the viewer finished): close it either way.
    teardown(overlay);
    overlay = null;
    overlayRoot.replaceChildren();
    overlayRoot.hidden = true;
    document.body.classList.remove("has-overlay");
    root.inert = false;
    const underneath = current && current.path === location.pathname + location.search;
    if (underneath) {
      onSection(route.section);
      return; // the grid under the viewer is still there, scrolled where it was
    }
  }
  teardown(current);
  current = null;
  window.scrollTo(0, 0);
  const loaded = stillCurrent(await load(route, params, root), mine);
  if (!loaded) return;
  current = loaded;
  focusTitle(root);
}

/** Start routing: links marked data-nav (and any same-origin link to an app address) navigate
 * without a page load; Back and Forward re-render. */
export function startRouter(main, sectionChanged) {
  root = main;
  onSection = sectionChanged;
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[href]");
    if (!link || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    if (link.target && link.target !== "_self") return;
    const url = new URL(link.href, location.origin);
    if (url.origin !== location.origin || !match(url.pathname)) return;
    event.preventDefault();
    navigate(url.pathname + url.search + url.hash);
  });
  window.addEventListener("popstate", () => {
    inAppNavigations = Math.max(0, inAppNavigations - 1);
    render();
  });
  return render();
}
