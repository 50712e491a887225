// A person (/people/:id): their face, name and photo count; rename in place, hide or show,
// merge into another person (chosen by name), delete; their faces, each of which can be told
// "not this person" or moved to someone else (person-faces.js); their photos in a justified grid
// with infinite scroll, which the photo viewer steps through.

import { api, isAbort, query } from "../lib/api.js";
import { button, el, heading, notify, plural, statusLine, useStyles } from "../lib/dom.js";
import { PhotoGrid, infiniteScroll, setViewerList } from "../lib/photos.js";
import { navigate } from "../lib/router.js";
import { faceImage, fillNames, listPeople, namesList, personFace, personNamed } from "./faces.js";
import { faceStrip } from "./person-faces.js";

const PAGE = 100;
const NAMES_ID = "person-names";

/** A small form that opens in place of a button: a labelled field, submit and cancel, and a
 * line for the server's answer when it refuses. */
function inlineForm({ id, label, submit, value = "", list = null, note = null }) {
  const input = el("input", {
    id,
    type: "text",
    maxlength: "200",
    autocomplete: "off",
    required: true,
    list,
    value,
  });
  const error = el("p", { class: "note error", role: "alert" });
  const cancel = el("button", { type: "button" }, "Cancel");
  const form = el(
    "form",
    { class: "panel inline-form", hidden: true },
    el(
      "div",
      { class: "search-form" },
      el("p", { class: "field grow" }, el("label", { for: id }, label), input),
      el("button", { type: "submit", class: "primary" }, submit),
      cancel,
    ),
    note ? el("p", { class: "note" }, note) : null,
    error,
  );
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") cancel.click();
  });
  return { form, input, error, cancel };
}

function notFound(root, id, message) {
  root.append(
    heading("Person not found"),
    el(
      "p",
      { class: "note" },
      `${message}. They may have been merged into someone else or deleted. `,
      el("a", { href: "/people", "data-nav": true }, "See everyone on the People page"),
    ),
  );
}

export async function render(root, ctx) {
  useStyles("views/person.css");
  const { signal } = ctx;
  const id = Number(ctx.params.id);
  if (!Number.isSafeInteger(id) || id < 1) {
    notFound(root, ctx.params.id, `"${ctx.params.id}" is not a person's number`);
    return undefined;
  }
  let person;
  try {
    person = await api(`/api/v1/persons/${id}`, { signal });
  } catch (error) {
    if (isAbort(error)) return undefined;
    if (error.status === 404) notFound(root, id, `There is no person ${id}`);
    else
      root.append(
        heading("Person"),
        statusLine(`Could not load this person: ${error.message}`, "error"),
      );
    return undefined;
  }

  let people = [];
  const names = namesList(NAMES_ID);
  const title = heading(person.name);
  let coverId = await personFace(person, signal).catch(() => null);
  const big = el("div", { class: "person-face" }, faceImage(coverId));
  const counts = el("span", { class: "count" });
  const hiddenTag = el("span", { class: "tag" }, "Hidden from People");
  const showCounts = () => {
    counts.textContent = plural(person.faces, "photo");
    hiddenTag.hidden = !person.hidden;
  };
  showCounts();

  // --- rename, hide, merge, delete -----------------------------------------------------------
  const rename = inlineForm({ id: "rename", label: "Name", submit: "Save" });
  const merge = inlineForm({
    id: "merge-into",
    label: "Merge into",
    submit: "Merge",
    list: NAMES_ID,
    note: "Type a name to find them. Their faces and photos move to that person, and this person is removed.",
  });
  const renameButton = button("Rename", () => openForm(rename, person.name));
  const hideButton = button("", toggleHidden);
  const mergeButton = button("Merge…", () => openForm(merge, ""));
  const deleteButton = button("Delete", remove, { class: "danger" });
  const showHideLabel = () => {
    hideButton.textContent = person.hidden ? "Show in People" : "Hide from People";
  };
  showHideLabel();

  function openForm(which, value) {
    for (const f of [rename, merge]) f.form.hidden = f !== which;
    which.error.textContent = "";
    which.input.value = value;
    which.input.focus();
    which.input.select();
  }
  for (const [which, opener] of [
    [rename, renameButton],
    [merge, mergeButton],
  ]) {
    which.cancel.addEventListener("click", () => {
      which.form.hidden = true;
      opener.focus();
    });
  }

  rename.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = rename.input.value.trim();
    if (!name || name === person.name) {
      rename.form.hidden = true;
      renameButton.focus();
      return;
    }
    try {
      person = await api(`/api/v1/persons/${id}`, { method: "PATCH", json: { name } });
    } catch (error) {
      if (isAbort(error)) return;
      rename.error.textContent =
        error.status === 409
          ? `${error.message}. To make them one person, use Merge instead.`
          : `Not renamed: ${error.message}`;
      return;
    }
    title.textContent = person.name;
    rename.form.hidden = true;
    renameButton.focus();
    notify(`Renamed to ${person.name}.`);
    loadNames();
  });

  async function toggleHidden() {
    try {
      person = await api(`/api/v1/persons/${id}`, {
        method: "PATCH",
        json: { hidden: !person.hidden },
      });
    } catch (error) {
      if (!isAbort(error)) notify(`Could not change it: ${error.message}`, "error");
      return;
    }
    showHideLabel();
    showCounts();
    notify(
      person.hidden
        ? `${person.name} is hidden from People.`
        : `${person.name} is shown in People.`,
    );
  }

  merge.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    // The names may still be loading, or someone was named since: look again before refusing.
    let target = personNamed(people, merge.input.value);
    if (!target) {
      await loadNames();
      target = personNamed(people, merge.input.value);
    }
    if (!target || target.id === id) {
      merge.error.textContent = target
        ? "That is this person: choose someone else."
        : `Nobody is called "${merge.input.value.trim()}": choose one of the suggested names.`;
      return;
    }
    if (
      !window.confirm(`Merge ${person.name} into ${target.name}? ${person.name} will be removed.`)
    )
      return;
    try {
      await api(`/api/v1/persons/${id}/merge`, { method: "POST", json: { into: target.id } });
    } catch (error) {
      if (isAbort(error)) return;
      merge.error.textContent =
        error.status === 409
          ? `Not merged: ${error.message}. One photo cannot show the same person twice: in the faces below, press "Not them" on the wrong face, then merge again.`
          : `Not merged: ${error.message}`;
      return;
    }
    notify(`${person.name} merged into ${target.name}.`);
    window.dispatchEvent(new Event("viewfinder:work"));
    navigate(`/people/${target.id}`, { replace: true });
  });

  async function remove() {
    const message = `Delete ${person.name}? Their ${plural(person.faces, "face")} become unnamed and may be grouped again.`;
    if (!window.confirm(message)) return;
    try {
      await api(`/api/v1/persons/${id}`, { method: "DELETE" });
    } catch (error) {
      if (!isAbort(error)) notify(`Could not delete: ${error.message}`, "error");
      return;
    }
    notify(`${person.name} deleted; their faces are unnamed.`);
    window.dispatchEvent(new Event("viewfinder:work"));
    navigate("/people");
  }

  async function loadNames() {
    try {
      people = await listPeople(signal);
      fillNames(names, people, id);
    } catch (error) {
      if (!isAbort(error)) notify(`Could not load the names to suggest: ${error.message}`, "error");
    }
  }

  // --- photos --------------------------------------------------------------------------------
  const grid = new PhotoGrid({ label: `Photos of ${person.name}` });
  const photosNote = statusLine("Loading photos…");
  const sentinel = el("div", { class: "sentinel" });
  const ids = [];
  let offset = 0;
  async function morePhotos() {
    try {
      const assets = await api(`/api/v1/persons/${id}/photos${query({ limit: PAGE, offset })}`, {
        signal,
      });
      offset += assets.length;
      ids.push(...assets.map((a) => a.id));
      grid.add(assets);
      photosNote.textContent = ids.length ? "" : `No photos of ${person.name} any more.`;
      return assets.length === PAGE;
    } catch (error) {
      if (!isAbort(error)) {
        photosNote.className = "note error";
        photosNote.textContent = `Could not load the photos: ${error.message}`;
      }
      return false;
    }
  }
  setViewerList(ids, morePhotos, `Photos of ${person.name}`);

  // --- faces ---------------------------------------------------------------------------------
  const faces = faceStrip({
    person: () => person,
    people: () => people,
    namesId: NAMES_ID,
    signal,
    onGone(face) {
      // The face is no longer theirs: one photo fewer (one face per person per photo).
      person = { ...person, faces: Math.max(0, person.faces - 1) };
      showCounts();
      grid.remove(face.asset_id);
      const at = ids.indexOf(face.asset_id);
      if (at >= 0) ids.splice(at, 1);
      if (face.id === coverId) {
        coverId = faces.first();
        big.replaceChildren(faceImage(coverId));
      }
      window.dispatchEvent(new Event("viewfinder:work"));
    },
  });

  root.append(
    el("p", { class: "crumbs" }, el("a", { href: "/people", "data-nav": true }, "People")),
    el(
      "div",
      { class: "view-head person-head" },
      big,
      el(
        "div",
        { class: "person-title" },
        title,
        el("p", { class: "note" }, counts, " ", hiddenTag),
      ),
      el("div", { class: "actions" }, renameButton, hideButton, mergeButton, deleteButton),
    ),
    rename.form,
    merge.form,
    faces.section,
    el(
      "section",
      { class: "panel", "aria-labelledby": "person-photos" },
      el("h2", { id: "person-photos" }, "Photos"),
      photosNote,
      grid.element,
      sentinel,
    ),
    names,
  );
  loadNames();
  faces.load();
  infiniteScroll(sentinel, morePhotos, signal);
  return () => grid.destroy();
}
