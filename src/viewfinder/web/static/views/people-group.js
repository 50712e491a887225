// One unnamed group in a dialog (People view): every face of it, each with a button that takes
// it out of the group (the server then never puts it back), and the name field. A modal
// <dialog> keeps the focus inside and closes with Esc.

import { api, isAbort } from "../lib/api.js";
import { button, el, notify, plural, statusLine } from "../lib/dom.js";
import { faceImage, removeFromGroup } from "./faces.js";

/**
 * Open `group` ({cluster_id, size, face_ids}). `onName(clusterId, name)` names it (resolving
 * true on success), `onChange()` follows a removed face, `onClose()` runs when it closes.
 */
export function openGroup(group, { namesId, signal, onName, onChange, onClose }) {
  const clusterId = group.cluster_id;
  let size = group.size;
  const count = el("p", { class: "note" });
  const showCount = () => {
    count.textContent = `${plural(size, "face")}. Take out any face that is not the same person, then name the group.`;
  };
  showCount();
  const state = statusLine("Loading the faces…");
  const list = el("ul", { class: "faces group-faces", "aria-label": "Faces in this group" });
  const input = el("input", {
    id: "group-name",
    type: "text",
    list: namesId,
    maxlength: "200",
    autocomplete: "off",
    placeholder: "Add a name",
  });
  const form = el(
    "form",
    { class: "search-form" },
    el("p", { class: "field grow" }, el("label", { for: "group-name" }, "Who is this?"), input),
    el("button", { type: "submit", class: "primary" }, "Save name"),
  );
  const dialog = el(
    "dialog",
    { class: "group-dialog", "aria-labelledby": "group-title" },
    el(
      "div",
      { class: "section-head" },
      el("h2", { id: "group-title" }, "Unnamed group"),
      button("Close", () => dialog.close()),
    ),
    count,
    state,
    list,
    form,
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = input.value.trim();
    if (!name) return input.focus();
    form.inert = true;
    const named = await onName(clusterId, name);
    form.inert = false;
    if (named) dialog.close();
  });

  async function remove(face, item, index) {
    try {
      await removeFromGroup(clusterId, face.id);
    } catch (error) {
      if (!isAbort(error)) notify(`Could not take the face out: ${error.message}`, "error");
      return;
    }
    // Keep the focus in the list: on the next face's button, else the previous one.
    const next = item.nextElementSibling || item.previousElementSibling;
    item.remove();
    size -= 1;
    showCount();
    if (next) next.querySelector("button").focus();
    else input.focus();
    notify(`Face ${index} taken out of the group.`);
    onChange();
  }

  async function load() {
    try {
      const page = await api(
        `/api/v1/faces?cluster_id=${encodeURIComponent(clusterId)}&limit=1000`,
        { signal },
      );
      state.textContent = page.items.length ? "" : "This group has no faces any more.";
      list.replaceChildren(
        ...page.items.map((face, i) => {
          const label = `Face ${i + 1} of ${page.items.length}`;
          const item = el(
            "li",
            { class: "face-card", "data-face-id": face.id },
            faceImage(face.id, label),
          );
          item.append(
            button("Not in this group", () => remove(face, item, i + 1), {
              class: "small",
              "aria-label": `Not in this group: face ${i + 1}`,
            }),
          );
          return item;
        }),
      );
    } catch (error) {
      if (isAbort(error)) return;
      state.className = "note error";
      state.textContent = `Could not load the faces: ${error.message}`;
    }
  }

  dialog.addEventListener("close", () => {
    dialog.remove();
    onClose();
  });
  signal.addEventListener("abort", () => dialog.open && dialog.close());
  document.getElementById("view").append(dialog);
  dialog.showModal();
  input.focus();
  load();
  return dialog;
}
