// People (/people): named people as round face thumbnails with their photo counts, most photos
// first (hidden ones on request), and the unnamed groups the server found, each a face to name
// in place (a name already in use adds the faces to that person). A group opens in a dialog
// to take out the faces that do not belong before naming it. The page follows the background
// work: while faces are being found or organised it refreshes itself every few seconds, so
// people appear without a command or a reload.

import { api, isAbort } from "../lib/api.js";
import { replaceQuery } from "../lib/router.js";
import { el, heading, notify, plural, statusLine, useStyles } from "../lib/dom.js";
import { openGroup } from "./people-group.js";
import { faceImage, fillNames, followWork, listPeople, namesList, personFace } from "./faces.js";

const NAMES_ID = "people-names";

/** Replace `list`'s children by `nodes` only when the order changed: moving a node would take
 * the focus (and a half-typed name's caret) away from whoever is using it. */
function reorder(list, nodes) {
  const same =
    list.children.length === nodes.length && nodes.every((node, i) => list.children[i] === node);
  if (same) return;
  const focused = document.activeElement;
  list.replaceChildren(...nodes);
  if (focused && focused !== document.activeElement && list.contains(focused)) {
    focused.focus({ preventScroll: true });
  }
}

function personCard(person, faceId) {
  const tag = person.hidden ? el("span", { class: "tag" }, "Hidden") : null;
  return el(
    "li",
    { class: `face-card${person.hidden ? " is-hidden" : ""}`, "data-person-id": person.id },
    el(
      "a",
      { href: `/people/${person.id}`, "data-nav": true },
      faceImage(faceId),
      el("span", { class: "name" }, person.name),
      el("span", { class: "count" }, plural(person.faces, "photo")),
    ),
    tag,
  );
}

/** An unnamed group: its first face (a button that opens the group) and a name field. */
function groupCard(group, onOpen, onName) {
  const inputId = `name-${group.cluster_id}`;
  const input = el("input", {
    id: inputId,
    type: "text",
    list: NAMES_ID,
    maxlength: "200",
    autocomplete: "off",
    placeholder: "Add a name",
  });
  const form = el(
    "form",
    { class: "name-form" },
    el(
      "label",
      { for: inputId, class: "visually-hidden" },
      `Name for ${plural(group.size, "face")}`,
    ),
    input,
    el("button", { type: "submit", class: "small" }, "Save"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = input.value.trim();
    if (!name) {
      input.focus();
      return;
    }
    form.inert = true;
    try {
      await onName(group.cluster_id, name);
    } finally {
      form.inert = false;
    }
  });
  const open = el(
    "button",
    { type: "button", class: "face-button" },
    faceImage(group.face_id ?? group.face_ids[0]), // the server's best face, where it says
    el(
      "span",
      { class: "count" },
      el("span", { class: "visually-hidden" }, "Show all "),
      plural(group.size, "face"),
    ),
  );
  open.addEventListener("click", () => onOpen(group));
  return el("li", { class: "face-card group", "data-cluster-id": group.cluster_id }, open, form);
}

export async function render(root, ctx) {
  useStyles("views/people.css");
  const { signal } = ctx;
  let showHidden = ctx.query.get("hidden") === "1";

  const toggle = el("input", { id: "show-hidden", type: "checkbox" });
  toggle.checked = showHidden;
  const live = statusLine();
  const peopleNote = statusLine("Loading people…");
  const peopleList = el("ul", { class: "faces", "aria-labelledby": "people-named" });
  const groupsNote = statusLine();
  const groupsList = el("ul", { class: "faces", "aria-labelledby": "people-unnamed" });
  const names = namesList(NAMES_ID);

  root.append(
    el(
      "div",
      { class: "view-head" },
      heading("People"),
      el(
        "div",
        { class: "actions" },
        el("label", { class: "check" }, toggle, "Show hidden people"),
      ),
    ),
    live,
    el(
      "section",
      { class: "panel", "aria-labelledby": "people-named" },
      el("h2", { id: "people-named" }, "Named"),
      peopleNote,
      peopleList,
    ),
    el(
      "section",
      { class: "panel", "aria-labelledby": "people-unnamed" },
      el("div", { class: "section-head" }, el("h2", { id: "people-unnamed" }, "Unnamed groups")),
      el(
        "p",
        { class: "note" },
        "Faces that look alike. Type a name to make a group a person (a name you already use " +
          "adds the faces to that person); open a group to take out faces that do not belong.",
      ),
      groupsNote,
      groupsList,
    ),
    names,
  );

  const personNodes = new Map(); // person id -> { key, node }
  const groupNodes = new Map(); // cluster id -> { key, node }
  let people = [];
  let groups = [];
  let busy = false;

  async function showPeople() {
    const shown = people.filter((p) => showHidden || !p.hidden);
    const faces = await Promise.all(shown.map((p) => personFace(p, signal)));
    const nodes = shown.map((person, i) => {
      const key = JSON.stringify([person.name, person.faces, person.hidden, faces[i]]);
      const known = personNodes.get(person.id);
      if (known && known.key === key) return known.node;
      const node = personCard(person, faces[i]);
      personNodes.set(person.id, { key, node });
      return node;
    });
    reorder(peopleList, nodes);
    const hiddenCount = people.filter((p) => p.hidden).length;
    if (shown.length) peopleNote.textContent = "";
    else if (hiddenCount) {
      peopleNote.textContent = `Everyone named is hidden (${hiddenCount}). Tick "Show hidden people" to see them.`;
    } else if (groups.length) {
      peopleNote.textContent = "Nobody is named yet: name a group below to make it a person.";
    } else if (busy) {
      peopleNote.textContent =
        "Looking for faces in your photos… people appear here as they are found.";
    } else {
      peopleNote.replaceChildren(
        "No people yet. ",
        el("a", { href: "/", "data-nav": true }, "Upload photos"),
        " with faces: they are found and grouped by themselves, and the groups appear here to name.",
      );
    }
  }

  function showGroups() {
    const nodes = groups.map((group) => {
      const key = `${group.face_id}:${group.face_ids.join(",")}`;
      const known = groupNodes.get(group.cluster_id);
      if (known && known.key === key) return known.node;
      // A changed group keeps what was being typed into its name field.
      const typed = known ? known.node.querySelector("input").value : "";
      const node = groupCard(group, open, nameGroup);
      node.querySelector("input").value = typed;
      groupNodes.set(group.cluster_id, { key, node });
      return node;
    });
    reorder(groupsList, nodes);
    if (groups.length) groupsNote.textContent = "";
    else if (busy) groupsNote.textContent = "Grouping faces… groups to name appear here.";
    else {
      groupsNote.textContent =
        "No unnamed groups: faces that look alike are all named, or there are too few of them yet.";
    }
  }

  async function refresh(isBusy = busy) {
    busy = isBusy;
    try {
      [people, groups] = await Promise.all([
        listPeople(signal),
        api("/api/v1/faces/clusters", { signal }),
      ]);
    } catch (error) {
      if (isAbort(error)) return;
      peopleNote.className = "note error";
      peopleNote.textContent = `Could not load people: ${error.message}. The page tries again by itself.`;
      return;
    }
    peopleNote.className = "note";
    fillNames(names, people);
    live.textContent = busy ? "Finding and grouping faces… this page updates by itself." : "";
    showGroups();
    await showPeople();
  }

  async function nameGroup(clusterId, name) {
    try {
      const result = await api(`/api/v1/faces/clusters/${encodeURIComponent(clusterId)}/label`, {
        method: "POST",
        json: { name },
      });
      const skipped = result.faces_skipped
        ? ` (${plural(result.faces_skipped, "face")} left out: their photo already shows ${result.name})`
        : "";
      notify(`${plural(result.faces_labeled, "face")} named ${result.name}${skipped}.`);
      window.dispatchEvent(new Event("viewfinder:work")); // the organise job follows the change
      await refresh();
      return true;
    } catch (error) {
      if (!isAbort(error)) notify(`Could not name the group: ${error.message}`, "error");
      return false;
    }
  }

  function open(group) {
    replaceQuery(withGroup(group.cluster_id));
    openGroup(group, {
      namesId: NAMES_ID,
      signal,
      onName: nameGroup,
      onChange: () => refresh(),
      onClose: () => replaceQuery(withGroup(null)),
    });
  }

  function withGroup(clusterId) {
    const params = new URLSearchParams(location.search);
    if (clusterId) params.set("group", clusterId);
    else params.delete("group");
    return params;
  }

  toggle.addEventListener("change", () => {
    showHidden = toggle.checked;
    const params = new URLSearchParams(location.search);
    if (showHidden) params.set("hidden", "1");
    else params.delete("hidden");
    replaceQuery(params);
    showPeople();
  });

  await followWork(refresh, signal); // the first refresh: the title and lists are filled
  const wanted = ctx.query.get("group");
  const group = wanted && groups.find((g) => g.cluster_id === wanted);
  if (group) open(group);
}
