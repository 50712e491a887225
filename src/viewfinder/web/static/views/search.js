// Search: by text, by an uploaded image (picker or drop), "similar to" a stored photo, or by
// filters alone (an empty box: the photos that pass them, newest first), with filters (folder,
// capture dates, people with / without / only them, collection, text in the photo, detected
// objects, a similarity cut-off) and an order (relevance, newest, oldest; by filters alone there
// is nothing to rank by, so newest or oldest). The address holds the search (search-filters.js): a new search is
// a new history entry (Back returns to the previous one), a filter or order change replaces it.

import { api, isAbort } from "../lib/api.js";
import { button, el, heading, plural, statusLine, useStyles } from "../lib/dom.js";
import { PhotoGrid, infiniteScroll, setViewerList } from "../lib/photos.js";
import { navigate, replaceQuery } from "../lib/router.js";
import {
  addressOf,
  filterCount,
  filtersActive,
  objectsFilter,
  peopleFilter,
  positiveInt,
  readFilters,
} from "./search-filters.js";
import {
  MAX_RESULTS,
  PAGE_SIZE,
  folderSelect,
  loadFolders,
  scoredTile,
  searchPage,
} from "./search-tools.js";

const ORDER_NAMES = {
  relevance: "best match first",
  newest: "newest first",
  oldest: "oldest first",
};

/** What a search looks for: "“dog”", a file's name, "photo #3"; by filters alone, the objects
 * and words asked for ("dog, car, and the words “harbour”"), else "" (people, folder...). */
function describe(what, filters) {
  if (what && what.query !== undefined) return `“${what.query}”`;
  if (what && what.file) return what.file.name || "your image";
  if (what) return `photo #${what.assetId}`;
  const parts = [...filters.objects];
  if (filters.text) parts.push(`the words “${filters.text}”`);
  return new Intl.ListFormat("en", { type: "conjunction" }).format(parts);
}

export async function render(root, ctx) {
  useStyles("views/search.css");
  const filters = readFilters(ctx.query);
  const q = (ctx.query.get("q") || "").trim();
  const similar = positiveInt(ctx.query.get("similar"));
  let what = q ? { query: q } : similar ? { assetId: similar } : null;
  let blobUrl = null;

  // --- the search box (drop an image on it to search by image) -----------------------------

  const input = el("input", {
    id: "search-q",
    type: "search",
    name: "q",
    maxlength: "1000",
    autocomplete: "off",
    placeholder: "a dog on a beach, a red car, snow…",
    value: q,
  });
  const fileInput = el("input", {
    id: "search-file",
    type: "file",
    accept: "image/*",
    class: "visually-hidden",
  });
  const form = el(
    "form",
    { class: "search-form search-box", role: "search", "aria-label": "Search photos" },
    el("p", { class: "field grow" }, el("label", { for: "search-q" }, "Describe a photo"), input),
    el("button", { type: "submit", class: "primary" }, "Search"),
    el(
      "span",
      {},
      fileInput,
      el("label", { for: "search-file", class: "button" }, "Search by image…"),
    ),
    el("p", { class: "note drop-hint" }, "or drop an image here"),
  );

  // --- filters ------------------------------------------------------------------------------

  const folderField = el("p", { class: "field" }, el("label", { for: "search-folder" }, "Folder"));
  const folderHolder = el(
    "select",
    { id: "search-folder", disabled: true },
    el("option", {}, "Loading folders…"),
  );
  folderField.append(folderHolder);
  const from = el("input", { id: "search-from", type: "date", value: filters.from });
  const to = el("input", { id: "search-to", type: "date", value: filters.to });
  const min = el("input", {
    id: "search-min",
    type: "number",
    min: "-1",
    max: "1",
    step: "0.01",
    inputmode: "decimal",
    placeholder: "none",
    value: filters.minScore === null ? "" : String(filters.minScore),
  });
  const collectionField = el("p", { class: "field", hidden: true });
  const textFilter = el("input", {
    id: "search-text",
    type: "search",
    maxlength: "1000",
    autocomplete: "off",
    placeholder: "words on a sign…",
    value: filters.text,
  });
  const people = peopleFilter(filters, (changes) => setFilters(changes));
  const objects = objectsFilter(filters, (labels) => setFilters({ objects: labels }));
  const filterNote = el("p", { class: "note", role: "status" });
  const clear = button("Clear filters", () => clearFilters());
  // A disclosure: open on wide screens; on a phone closed unless a filter is set, so the results
  // come first.
  const filterBadge = el("span", { class: "filter-count" });
  const filterPanel = el(
    "details",
    {
      class: "panel search-filters",
      open: window.matchMedia("(min-width: 700px)").matches || filtersActive(filters),
    },
    el("summary", {}, el("h2", {}, "Filters", filterBadge)),
    el(
      "div",
      { class: "filter-row" },
      folderField,
      el("p", { class: "field" }, el("label", { for: "search-from" }, "Taken from"), from),
      el("p", { class: "field" }, el("label", { for: "search-to" }, "Taken until"), to),
      collectionField,
      el(
        "p",
        { class: "field" },
        el("label", { for: "search-text" }, "Text in the photo"),
        textFilter,
      ),
      el(
        "p",
        { class: "field narrow-field" },
        el("label", { for: "search-min" }, "Minimum similarity"),
        min,
      ),
      clear,
    ),
    ...people.elements,
    objects.element,
    filterNote,
  );

  // --- results ------------------------------------------------------------------------------

  const source = el("div", { class: "search-source" });
  const summary = statusLine("");
  const relevance = el("option", { value: "relevance" }, "Relevance");
  const order = el(
    "select",
    { id: "search-sort" },
    relevance,
    el("option", { value: "newest" }, "Newest first"),
    el("option", { value: "oldest" }, "Oldest first"),
  );
  order.addEventListener("change", () => setFilters({ sort: order.value }));
  // Why Relevance is greyed out by filters alone (shown beside the menu, and read with it).
  const orderHint = el(
    "span",
    { class: "sort-hint", id: "search-sort-hint", hidden: true },
    "Relevance needs words or an image",
  );
  const resultsBar = el(
    "div",
    { class: "results-bar" },
    summary,
    el(
      "p",
      { class: "sort-field" },
      orderHint,
      el("label", { for: "search-sort" }, "Sort by"),
      order,
    ),
  );
  const grid = new PhotoGrid({ label: "Search results", tile: scoredTile });
  const empty = el("div", { class: "search-empty" });
  const sentinel = el("div", { class: "sentinel" });
  root.append(
    heading("Search"),
    form,
    filterPanel,
    source,
    resultsBar,
    grid.element,
    empty,
    sentinel,
  );

  let run = null; // { controller, offset, more, ids, loading }

  async function loadMore() {
    const current = run;
    if (!current || !current.more) return false;
    if (current.loading) return current.loading;
    current.loading = (async () => {
      try {
        const page = await searchPage(
          what,
          filters,
          current.offset,
          PAGE_SIZE,
          current.controller.signal,
        );
        if (current !== run) return false;
        // The grid lays out assets (their sizes); each carries its hit's score for its tile (none
        // by filters alone: every photo passes them, none is a better match).
        grid.add(page.hits.map((hit) => ({ ...hit.asset, score: what ? hit.score : null })));
        for (const hit of page.hits) current.ids.push(hit.asset.id);
        current.offset += page.hits.length;
        current.more = page.hits.length === PAGE_SIZE && current.offset + PAGE_SIZE <= MAX_RESULTS;
        setViewerList(current.ids.slice(), current.more ? loadMore : null, "Search results");
        if (current.offset === 0) await showEmpty(page, current);
        else {
          summary.textContent = resultLine(page, current);
          summary.className = "note";
        }
        return current.more;
      } catch (error) {
        if (!isAbort(error) && current === run) {
          summary.textContent = `The search failed: ${error.message}`;
          summary.className = "note error";
          current.more = false;
        }
        return false;
      } finally {
        current.loading = null;
      }
    })();
    return current.loading;
  }

  /** "12 photos for “dog”, newest first." A date order sorts the best `candidates` hits by
   * relevance: when the list is that full, more photos may match, and the line says so. */
  function resultLine(page, current) {
    const sort = page.sort || filters.sort;
    const found = describe(what, filters);
    let line = `${plural(current.offset, "photo")} `;
    if (what) line += `for ${found}`;
    else line += found ? `with ${found}` : "passing the filters";
    if (what || sort !== "relevance") line += `, ${ORDER_NAMES[sort] || sort}`;
    if (current.more) line += ", more as you scroll";
    if (sort !== "relevance" && page.candidates && page.total === page.candidates)
      line += ` (the ${page.candidates.toLocaleString()} best matches, by date)`;
    return `${line}.`;
  }

  /** The order menu and the cut-off follow what is searched: by filters alone there is no
   * relevance to rank by or similarity to cut off (the server lists them newest first). */
  function showRanking() {
    const ranked = Boolean(what);
    relevance.disabled = !ranked;
    orderHint.hidden = ranked;
    if (ranked) order.removeAttribute("aria-describedby");
    else order.setAttribute("aria-describedby", orderHint.id);
    order.value = ranked || filters.sort === "oldest" ? filters.sort : "newest";
    min.disabled = !ranked;
  }

  /** Start (again) from the first page: a new search or changed filters. */
  function start() {
    if (run) run.controller.abort();
    grid.clear();
    empty.replaceChildren();
    showRanking();
    if (!what && !filtersActive(filters)) {
      run = null;
      setViewerList([]);
      summary.textContent =
        "Describe what you are looking for, search by an image, or set filters (objects, " +
        "people, text in the photo…) to see every photo that passes them.";
      summary.className = "note";
      return;
    }
    summary.textContent = "Searching…";
    summary.className = "note";
    const controller = new AbortController();
    ctx.signal.addEventListener("abort", () => controller.abort());
    run = { controller, offset: 0, more: true, ids: [], loading: null };
    // The sentinel is in view under an empty grid: the observer asks for the first page.
    infiniteScroll(sentinel, loadMore, controller.signal);
  }

  // --- empty states: nothing indexed, nothing matched the filters, nothing above the cut-off -

  /** Why nothing came back: the server's `reason` (nothing_indexed, no_match_filters,
   * filtered_not_indexed, below_min_score...) and `message` say it; the status adds what is
   * still waiting or paused; each case offers its way out. */
  async function showEmpty(page, current) {
    let status = null;
    try {
      status = await api("/api/v1/status", { signal: current.controller.signal });
    } catch (error) {
      if (isAbort(error)) return;
    }
    if (current !== run) return;
    const reason = page.reason || (status && status.indexed === 0 ? "nothing_indexed" : null);
    const embed = status?.processing?.find((k) => k.kind === "embed");
    const waiting = embed ? (embed.counts.pending || 0) + (embed.counts.running || 0) : 0;
    const lines = [];
    const actions = [];
    // The server's sentence starts in lower case (it is also read in logs and JSON).
    if (page.message) lines.push(page.message.charAt(0).toUpperCase() + page.message.slice(1));
    if (reason === "nothing_indexed" || reason === "filtered_not_indexed") {
      if (embed && embed.paused) {
        lines.push(`Embedding is paused: ${embed.paused_reason}`);
        actions.push(el("a", { href: "/jobs", "data-nav": true }, "See why on the Jobs page"));
      } else if (waiting) {
        lines.push(`${plural(waiting, "photo")} waiting to be embedded: search again in a moment.`);
      } else if (reason === "nothing_indexed") {
        actions.push(el("a", { href: "/", "data-nav": true }, "Upload photos on the Photos page"));
      }
    }
    if (!lines.length) {
      if (reason === "below_min_score")
        lines.push(`No photo reaches the cut-off of ${filters.minScore}.`);
      else if (!what) lines.push("No photo passes these filters.");
      else if (filtersActive(filters))
        lines.push(`No photo matches ${describe(what, filters)} with these filters.`);
      else lines.push(`No photo matches ${describe(what, filters)}.`);
    }
    // Offer the way out that fits the reason (both when the server gave none).
    if (reason !== "nothing_indexed" && reason !== "below_min_score" && filtersActive(filters)) {
      actions.push(button("Clear the filters", () => clearFilters()));
    }
    if (
      reason !== "nothing_indexed" &&
      reason !== "no_match_filters" &&
      filters.minScore !== null
    ) {
      actions.push(button("Remove the cut-off", () => setFilters({ minScore: null })));
    }
    summary.textContent = "No results.";
    summary.className = "note";
    empty.replaceChildren(
      el(
        "div",
        { class: "empty panel" },
        ...lines.map((line) => el("p", {}, line)),
        actions.length ? el("p", { class: "empty-actions" }, ...actions) : null,
      ),
    );
  }

  // --- what is searched for -----------------------------------------------------------------

  async function showSource() {
    source.replaceChildren();
    if (blobUrl) {
      URL.revokeObjectURL(blobUrl);
      blobUrl = null;
    }
    if (what && what.file) {
      blobUrl = URL.createObjectURL(what.file);
      source.append(
        el("img", { class: "source-thumb", src: blobUrl, alt: "" }),
        el("p", {}, "Photos like ", el("strong", {}, what.file.name || "your image")),
        button("Clear", () => navigate(`/search?${addressOf(null, filters)}`)),
      );
    } else if (what && what.assetId !== undefined) {
      const line = el("p", {}, "Photos similar to photo ", el("strong", {}, `#${what.assetId}`));
      source.append(
        line,
        button("Clear", () => navigate(`/search?${addressOf(null, filters)}`)),
      );
      try {
        const asset = await api(`/api/v1/assets/${what.assetId}`, { signal: ctx.signal });
        line.replaceChildren("Photos similar to ", el("strong", {}, asset.original_filename));
        source.prepend(
          el(
            "a",
            { href: `/photos/${asset.id}`, "data-nav": true, class: "source-link" },
            el("img", {
              class: "source-thumb",
              src: asset.thumbnail_url,
              alt: `Open ${asset.original_filename}`,
            }),
          ),
        );
      } catch (error) {
        if (!isAbort(error)) line.append(` (${error.message})`);
      }
    }
  }

  // --- filters: the address follows them; a running search starts again -------------------

  function countFilters() {
    const n = filterCount(filters);
    filterBadge.textContent = n ? ` (${n} set)` : "";
  }

  function setFilters(changes) {
    Object.assign(filters, changes);
    countFilters();
    min.value = filters.minScore === null ? "" : String(filters.minScore);
    textFilter.value = filters.text;
    replaceQuery(addressOf(what && !what.file ? what : null, filters));
    start();
  }

  function clearFilters() {
    from.value = "";
    to.value = "";
    const select = root.querySelector("#search-folder");
    if (select) select.value = "";
    const coll = root.querySelector("#search-collection");
    if (coll) coll.value = "";
    people.clear();
    objects.clear();
    setFilters({
      folder: "",
      from: "",
      to: "",
      people: [],
      match: "all",
      without: [],
      onlyPeople: false,
      collection: null,
      text: "",
      objects: [],
    });
  }

  from.addEventListener("change", () => setFilters({ from: from.value }));
  // The words apply on Enter or on leaving the field (change), once per new value.
  const applyText = () => {
    const text = textFilter.value.trim();
    if (text !== filters.text) setFilters({ text });
  };
  textFilter.addEventListener("change", applyText);
  textFilter.addEventListener("keydown", (event) => {
    if (event.key === "Enter") applyText();
  });
  to.addEventListener("change", () => setFilters({ to: to.value }));
  min.addEventListener("change", () => {
    const value = min.value === "" ? null : Number(min.value);
    if (value !== null && !(value >= -1 && value <= 1)) {
      min.setCustomValidity("Between -1 and 1");
      min.reportValidity();
      return;
    }
    min.setCustomValidity("");
    setFilters({ minScore: value });
  });

  async function loadChoices() {
    const [folders, persons, collections, labels] = await Promise.allSettled([
      loadFolders(ctx.signal),
      api("/api/v1/persons", { signal: ctx.signal }),
      api("/api/v1/collections", { signal: ctx.signal }),
      api("/api/v1/objects", { signal: ctx.signal }),
    ]);
    if (ctx.signal.aborted) return;
    if (folders.status === "fulfilled") {
      const select = folderSelect("search-folder", folders.value, filters.folder);
      select.addEventListener("change", () => setFilters({ folder: select.value }));
      folderHolder.replaceWith(select);
    } else {
      folderHolder.replaceWith(
        el("p", { class: "note error" }, `Folders unavailable: ${folders.reason.message}`),
      );
    }
    if (persons.status === "fulfilled") people.show(persons.value);
    else people.fail(persons.reason.message);
    if (labels.status === "fulfilled") objects.show(labels.value);
    else objects.unavailable(labels.reason);
    if (collections.status === "fulfilled") {
      const select = el(
        "select",
        { id: "search-collection" },
        el("option", { value: "" }, "Any collection"),
      );
      for (const c of collections.value) {
        select.append(
          el(
            "option",
            { value: c.id, selected: c.id === filters.collection },
            `${c.name} (${c.size.toLocaleString()})`,
          ),
        );
      }
      select.addEventListener("change", () =>
        setFilters({ collection: positiveInt(select.value) }),
      );
      collectionField.replaceChildren(
        el("label", { for: "search-collection" }, "Collection"),
        select,
      );
      collectionField.hidden = false;
    }
  }

  // --- starting a search ----------------------------------------------------------------------

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) {
      // An empty box lists the photos that pass the filters, when any is set.
      if (what && filtersActive(filters)) {
        const url = `/search?${addressOf(null, filters)}`;
        navigate(url, { replace: url === location.pathname + location.search });
      } else input.focus();
      return;
    }
    const url = `/search?${addressOf({ query: text }, filters)}`;
    navigate(url, { replace: url === location.pathname + location.search });
  });

  function searchByImage(file) {
    if (!file || !file.type.startsWith("image/")) {
      summary.textContent = "That is not an image: choose a photo (JPEG, PNG, WebP…).";
      summary.className = "note error";
      return;
    }
    what = { file };
    input.value = "";
    // An uploaded image has no address: the address keeps the filters only.
    replaceQuery(addressOf(null, filters));
    showSource();
    start();
  }

  fileInput.addEventListener("change", () => {
    searchByImage(fileInput.files[0]);
    fileInput.value = "";
  });
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
  form.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    form.classList.add("over");
  });
  form.addEventListener("dragleave", () => form.classList.remove("over"));
  form.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    form.classList.remove("over");
    searchByImage(event.dataTransfer.files[0]);
  });

  countFilters();
  showSource();
  start();
  loadChoices().catch((error) => {
    if (!isAbort(error)) filterNote.textContent = `Filters unavailable: ${error.message}`;
  });

  return () => {
    grid.destroy();
    if (blobUrl) URL.revokeObjectURL(blobUrl);
  };
}
