// The viewer's "Add to collection": choose one of the collections (GET /api/v1/collections) or
// name a new one, then POST /api/v1/collections/{id}/assets with this photo.

import { api, isAbort } from "../lib/api.js";
import { button, el, notify } from "../lib/dom.js";

export function collectionPicker(asset, signal) {
  const status = el("p", { class: "note", role: "status" });
  const select = el("select", { id: "collection-choice" });
  const chooseForm = el(
    "form",
    { class: "picker-row" },
    el(
      "p",
      { class: "field grow" },
      el("label", { for: "collection-choice" }, "Collection"),
      select,
    ),
    el("button", { type: "submit", class: "primary" }, "Add"),
  );
  const nameInput = el("input", {
    id: "collection-new",
    type: "text",
    required: true,
    maxlength: "200",
    autocomplete: "off",
  });
  const createForm = el(
    "form",
    { class: "picker-row" },
    el(
      "p",
      { class: "field grow" },
      el("label", { for: "collection-new" }, "New collection"),
      nameInput,
    ),
    el("button", { type: "submit" }, "Create and add"),
  );
  const panel = el(
    "section",
    {
      id: "collection-picker",
      class: "viewer-section picker",
      "aria-label": "Add to a collection",
      hidden: true,
    },
    chooseForm,
    createForm,
    status,
  );
  const toggle = button("Add to collection", () => (panel.hidden ? open() : close()), {
    class: "ghost",
    "aria-expanded": "false",
    "aria-controls": "collection-picker",
  });
  let loaded = false;

  async function open() {
    panel.hidden = false;
    toggle.setAttribute("aria-expanded", "true");
    if (!loaded) {
      status.textContent = "Loading your collections…";
      chooseForm.hidden = true;
      try {
        const collections = await api("/api/v1/collections", { signal });
        loaded = true;
        select.replaceChildren(...collections.map((c) => el("option", { value: c.id }, c.name)));
        chooseForm.hidden = collections.length === 0;
        status.textContent = collections.length ? "" : "No collections yet: name one to create it.";
      } catch (error) {
        if (isAbort(error)) return;
        status.textContent = `Could not load the collections: ${error.message}`;
      }
    }
    (chooseForm.hidden ? nameInput : select).focus();
  }

  function close() {
    panel.hidden = true;
    toggle.setAttribute("aria-expanded", "false");
    toggle.focus();
  }

  async function add(collectionId, name) {
    const result = await api(`/api/v1/collections/${collectionId}/assets`, {
      method: "POST",
      json: { asset_ids: [asset.id] },
      signal,
    });
    notify(result.added ? `Added to ${name}` : `Already in ${name}`);
    close();
  }

  chooseForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const option = select.selectedOptions[0];
    if (!option) return;
    try {
      await add(option.value, option.textContent);
    } catch (error) {
      if (!isAbort(error)) status.textContent = `Not added: ${error.message}`;
    }
  });
  createForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = nameInput.value.trim();
    if (!name) return;
    try {
      const created = await api("/api/v1/collections", { method: "POST", json: { name }, signal });
      nameInput.value = "";
      select.append(el("option", { value: created.id }, created.name));
      chooseForm.hidden = false;
      await add(created.id, created.name);
    } catch (error) {
      if (!isAbort(error)) status.textContent = `Not created: ${error.message}`;
    }
  });

  return { toggle, panel, close, isOpen: () => !panel.hidden };
}
