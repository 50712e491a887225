// The faces of a person (Person view): a strip of face thumbnails, each linking to its photo,
// with "Not them" (not this person: the server never gives the face back to them) and "Move" (to another
// person, or a new one by typing a new name). Every action is a button: Tab and Enter reach it.

import { api, isAbort, query } from "../lib/api.js";
import { button, el, notify, plural, statusLine } from "../lib/dom.js";
import { faceImage, notThisPerson, personNamed } from "./faces.js";

const PAGE = 100;

/**
 * `person()` and `people()` give the current person and everyone (for names); `onGone(face)`
 * runs when a face stops being theirs. Returns { section, load, first } (first: the id of the
 * first face shown, or null).
 */
export function faceStrip({ person, people, namesId, signal, onGone }) {
  const list = el("ul", { class: "faces face-strip", "aria-labelledby": "person-faces" });
  const state = statusLine("Loading faces…");
  const more = button("Show more faces", () => load(), { class: "small", hidden: true });
  let loaded = 0;
  let total = 0;
  let numbered = 0; // faces keep their number when others leave the strip
  let moving = null; // { face, item, number } while the move form is open

  // The one move form, opened under the strip for the face whose Move button was pressed.
  const input = el("input", {
    id: "move-to",
    type: "text",
    list: namesId,
    maxlength: "200",
    autocomplete: "off",
    required: true,
  });
  const moveLabel = el("label", { for: "move-to" }, "Move the face to");
  const moveError = el("p", { class: "note error", role: "alert" });
  const cancel = button("Cancel", () => closeMove());
  const form = el(
    "form",
    { class: "inline-form", hidden: true },
    el(
      "div",
      { class: "search-form" },
      el("p", { class: "field grow" }, moveLabel, input),
      el("button", { type: "submit", class: "primary" }, "Move"),
      cancel,
    ),
    el("p", { class: "note" }, "Choose a suggested name, or type a new one to start a new person."),
    moveError,
  );
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeMove();
  });

  function closeMove() {
    form.hidden = true;
    if (moving && moving.item.isConnected) moving.item.querySelector(".move").focus();
    moving = null;
  }

  /** The face is no longer theirs: out of the strip, the focus on a neighbour. */
  function gone(face, item) {
    const next = item.nextElementSibling || item.previousElementSibling;
    item.remove();
    total -= 1;
    loaded -= 1;
    showState();
    if (next) next.querySelector("button").focus();
    onGone(face);
  }

  async function reject(face, item, number) {
    const name = person().name;
    try {
      await notThisPerson(face.id, person().id);
    } catch (error) {
      if (!isAbort(error)) notify(`Could not remove face ${number}: ${error.message}`, "error");
      return;
    }
    notify(`Face ${number} is not ${name} any more.`);
    gone(face, item);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!moving) return;
    const { face, item, number } = moving;
    const name = input.value.trim();
    const target = personNamed(people(), name);
    if (target && target.id === person().id) {
      moveError.textContent = `Face ${number} is already ${target.name}'s: choose someone else.`;
      return;
    }
    try {
      await api(`/api/v1/faces/${face.id}/assign`, {
        method: "POST",
        json: target ? { person_id: target.id } : { name },
      });
    } catch (error) {
      if (!isAbort(error)) moveError.textContent = `Not moved: ${error.message}`;
      return;
    }
    notify(`Face ${number} moved to ${target ? target.name : name}.`);
    form.hidden = true;
    moving = null;
    gone(face, item);
  });

  function faceItem(face, number) {
    const item = el(
      "li",
      { class: "face-card", "data-face-id": face.id },
      el(
        "a",
        { href: `/photos/${face.asset_id}`, "data-nav": true },
        faceImage(face.id, `Photo of face ${number}`),
      ),
    );
    const name = person().name;
    const not = button("Not them", () => reject(face, item, number), {
      class: "small",
      "aria-label": `Not them: face ${number} is not ${name}`,
    });
    const move = button(
      "Move",
      () => {
        moving = { face, item, number };
        moveLabel.textContent = `Move face ${number} to`;
        moveError.textContent = "";
        input.value = "";
        form.hidden = false;
        input.focus();
      },
      { class: "small move", "aria-label": `Move face ${number} to someone else` },
    );
    item.append(el("div", { class: "face-actions" }, not, move));
    return item;
  }

  function showState() {
    more.hidden = loaded >= total;
    state.textContent = total
      ? `${plural(total, "face")}. Is one of them someone else? Say so, or move it to the right person.`
      : `No faces are ${person().name}'s any more.`;
  }

  async function load() {
    try {
      const page = await api(
        `/api/v1/faces${query({ person_id: person().id, limit: PAGE, offset: loaded })}`,
        {
          signal,
        },
      );
      total = page.total;
      list.append(...page.items.map((face) => faceItem(face, (numbered += 1))));
      loaded += page.items.length;
      showState();
    } catch (error) {
      if (isAbort(error)) return;
      state.className = "note error";
      state.textContent = `Could not load the faces: ${error.message}`;
    }
  }

  const section = el(
    "section",
    { class: "panel", "aria-labelledby": "person-faces" },
    el("h2", { id: "person-faces" }, "Faces"),
    state,
    list,
    more,
    form,
  );
  const first = () =>
    list.firstElementChild ? Number(list.firstElementChild.dataset.faceId) : null;
  return { section, load, first };
}
