// Collections: every collection with its cover photo, size and classifier; create one, delete
// one. A collection's own page (collection.js) browses, adds, removes and trains.

import { api, isAbort } from "../lib/api.js";
import { button, el, heading, notify, plural, statusLine, useStyles } from "../lib/dom.js";

/** "Classifier: precision 0.91, recall 0.88" or why there is none. */
export function classifierLine(classifier) {
  if (!classifier) return "No classifier trained yet";
  const metric = (value) => (value === null || value === undefined ? "–" : value.toFixed(2));
  return `Classifier: precision ${metric(classifier.precision)}, recall ${metric(classifier.recall)}`;
}

function card(collection, onDelete, signal) {
  const href = `/collections/${collection.id}`;
  const cover = el("a", {
    class: "collection-cover",
    href,
    "data-nav": true,
    tabindex: "-1",
    "aria-hidden": "true",
  });
  // The cover is the first member's thumbnail (an empty collection keeps the plain tile).
  if (collection.size === 0) cover.append(el("span", { class: "note" }, "No photos yet"));
  else {
    api(`/api/v1/collections/${collection.id}/assets?limit=1`, { signal })
      .then(([first]) => {
        if (first) cover.append(el("img", { src: first.thumbnail_url, alt: "", loading: "lazy" }));
      })
      .catch((error) => {
        if (!isAbort(error)) cover.append(el("span", { class: "note" }, "No cover"));
      });
  }
  const remove = button("Delete", () => onDelete(collection), {
    class: "danger small",
    "aria-label": `Delete collection ${collection.name}`,
  });
  return el(
    "li",
    { class: "collection-card", "data-collection-id": collection.id },
    cover,
    el(
      "div",
      { class: "collection-body" },
      el("h2", {}, el("a", { href, "data-nav": true }, collection.name)),
      el("p", { class: "note" }, plural(collection.size, "photo")),
      el("p", { class: "note" }, classifierLine(collection.classifier)),
      collection.description
        ? el("p", { class: "collection-description" }, collection.description)
        : null,
      el("p", { class: "collection-actions" }, remove),
    ),
  );
}

export async function render(root, ctx) {
  useStyles("views/collections.css");
  const name = el("input", {
    id: "collection-name",
    type: "text",
    required: true,
    maxlength: "200",
    autocomplete: "off",
  });
  const description = el("input", {
    id: "collection-description",
    type: "text",
    maxlength: "4000",
    autocomplete: "off",
  });
  const formError = el("p", { class: "note error", role: "alert" });
  const form = el(
    "form",
    { class: "panel create-collection", "aria-labelledby": "create-collection-title" },
    el("h2", { id: "create-collection-title" }, "New collection"),
    el(
      "div",
      { class: "search-form" },
      el("p", { class: "field grow" }, el("label", { for: "collection-name" }, "Name"), name),
      el(
        "p",
        { class: "field grow" },
        el("label", { for: "collection-description" }, "Description (optional)"),
        description,
      ),
      el("button", { type: "submit", class: "primary" }, "Create"),
    ),
    formError,
  );
  const summary = statusLine("Loading collections…");
  const list = el("ul", { class: "collection-list", "aria-label": "Collections" });
  root.append(
    heading("Collections"),
    el(
      "p",
      { class: "note" },
      "Named sets of photos. A collection's photos teach its classifier what to find.",
    ),
    form,
    summary,
    list,
  );

  async function refresh() {
    try {
      const collections = await api("/api/v1/collections", { signal: ctx.signal });
      list.replaceChildren(...collections.map((c) => card(c, remove, ctx.signal)));
      summary.textContent = collections.length
        ? plural(collections.length, "collection")
        : "No collections yet. Create one above, then add photos to it from its page.";
      summary.className = "note";
    } catch (error) {
      if (isAbort(error)) return;
      summary.textContent = `Could not load the collections: ${error.message}`;
      summary.className = "note error";
    }
  }

  async function remove(collection) {
    const question = `Delete the collection ${collection.name}? Its photos stay in your library.`;
    if (!window.confirm(question)) return;
    try {
      await api(`/api/v1/collections/${collection.id}`, { method: "DELETE", signal: ctx.signal });
      notify(`Deleted the collection ${collection.name}.`);
      await refresh();
      root.querySelector(".view-title").focus();
    } catch (error) {
      if (!isAbort(error)) notify(`Could not delete ${collection.name}: ${error.message}`, "error");
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError.textContent = "";
    try {
      const created = await api("/api/v1/collections", {
        method: "POST",
        json: { name: name.value, description: description.value.trim() || null },
        signal: ctx.signal,
      });
      name.value = "";
      description.value = "";
      notify(`Created the collection ${created.name}.`);
      await refresh();
      list.querySelector(`[data-collection-id="${created.id}"] h2 a`)?.focus();
    } catch (error) {
      if (!isAbort(error)) formError.textContent = `Not created: ${error.message}`;
    }
  });

  await refresh();
}
