// The search view's filters as an address and back, and the filter controls that are lists of
// choices: people (with all / any of them, without them, only them) and detected objects.
//
// The address: /search?q=dog&folder=nature&from=2014-01-01&to=2014-12-31&people=1,2&match=any
// &without=3&only=1&collection=4&min=0.2&text=harbour+1987&objects=dog,cat&sort=newest

import { el, statusLine } from "../lib/dom.js";

const DATE = /^\d{4}-\d{2}-\d{2}$/;
export const SORTS = ["relevance", "newest", "oldest"];
const MAX_CHOSEN = 20; // the server's limit per list of people, and more than 10 objects
const MAX_OBJECTS = 10;

export function positiveInt(value) {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : null;
}

function ids(value) {
  const seen = (value || "").split(",").map(positiveInt).filter(Boolean);
  return [...new Set(seen)].slice(0, MAX_CHOSEN);
}

/** The filters an address names (anything malformed is left out, not guessed). */
export function readFilters(query) {
  const min = query.get("min");
  const minScore = min !== null && min !== "" && Number.isFinite(Number(min)) ? Number(min) : null;
  const people = ids(query.get("people"));
  const chosen = new Set(people);
  const labels = (query.get("objects") || "")
    .split(",")
    .map((label) => label.trim().toLowerCase())
    .filter(Boolean);
  return {
    folder: query.get("folder") || "",
    from: DATE.test(query.get("from") || "") ? query.get("from") : "",
    to: DATE.test(query.get("to") || "") ? query.get("to") : "",
    people,
    match: query.get("match") === "any" ? "any" : "all",
    // Nobody is both wanted and excluded: the address's "people" wins.
    without: ids(query.get("without")).filter((id) => !chosen.has(id)),
    onlyPeople: query.get("only") === "1",
    collection: positiveInt(query.get("collection")),
    minScore: minScore !== null && minScore >= -1 && minScore <= 1 ? minScore : null,
    text: (query.get("text") || "").trim().slice(0, 1000),
    objects: [...new Set(labels)].slice(0, MAX_OBJECTS),
    sort: SORTS.includes(query.get("sort")) ? query.get("sort") : "relevance",
  };
}

/** Whether a filter narrows the search (the order is not a filter). */
export function filtersActive(f) {
  return Boolean(
    f.folder ||
    f.from ||
    f.to ||
    f.people.length ||
    f.without.length ||
    f.collection ||
    f.text ||
    f.objects.length,
  );
}

/** How many filters are set, for the panel's summary ("Filters (3 set)"). */
export function filterCount(f) {
  return (
    [f.folder, f.from, f.to, f.collection, f.minScore !== null, f.text].filter(Boolean).length +
    f.people.length +
    f.without.length +
    f.objects.length
  );
}

/** The address of a search: what (q or similar; an uploaded image has no address) + filters. */
export function addressOf(what, f) {
  const params = new URLSearchParams();
  if (what && what.query !== undefined) params.set("q", what.query);
  if (what && what.assetId !== undefined) params.set("similar", String(what.assetId));
  if (f.folder) params.set("folder", f.folder);
  if (f.from) params.set("from", f.from);
  if (f.to) params.set("to", f.to);
  if (f.people.length) params.set("people", f.people.join(","));
  if (f.people.length && f.match === "any") params.set("match", "any");
  if (f.without.length) params.set("without", f.without.join(","));
  if (f.people.length && f.onlyPeople) params.set("only", "1");
  if (f.collection) params.set("collection", String(f.collection));
  if (f.minScore !== null) params.set("min", String(f.minScore));
  if (f.text) params.set("text", f.text);
  if (f.objects.length) params.set("objects", f.objects.join(","));
  if (f.sort && f.sort !== "relevance") params.set("sort", f.sort);
  return params;
}

// --- people --------------------------------------------------------------------------------

function chip(id, value, name, checked, onChange) {
  const box = el("input", { type: "checkbox", id, value, checked });
  box.addEventListener("change", () => onChange(box));
  return el("span", { class: "chip-choice" }, box, el("label", { for: id }, name));
}

/**
 * The people filter: a fieldset of named people to require (all of them, or any of them, and
 * "only them": no one else in the photo) and a fieldset of people to leave out. `onChange`
 * gets {people, match, without, onlyPeople} after every change.
 */
export function peopleFilter(filters, onChange) {
  const withChoices = el("div", { class: "chip-choices" }, statusLine("Loading people…"));
  const withoutChoices = el("div", { class: "chip-choices" });
  const all = el("input", {
    type: "radio",
    name: "search-match",
    id: "search-match-all",
    value: "all",
    checked: filters.match !== "any",
  });
  const any = el("input", {
    type: "radio",
    name: "search-match",
    id: "search-match-any",
    value: "any",
    checked: filters.match === "any",
  });
  const only = el("input", {
    type: "checkbox",
    id: "search-only",
    checked: filters.onlyPeople,
    disabled: !filters.people.length,
  });
  const modes = el(
    "div",
    { class: "people-modes" },
    el(
      "fieldset",
      { class: "inline-choices" },
      el("legend", { class: "visually-hidden" }, "Photos showing"),
      el("span", { class: "radio-choice" }, all, el("label", { for: all.id }, "All of them")),
      el("span", { class: "radio-choice" }, any, el("label", { for: any.id }, "Any of them")),
    ),
    el(
      "span",
      { class: "radio-choice" },
      only,
      el("label", { for: only.id }, "Only them (no one else in the photo)"),
    ),
  );
  modes.hidden = true;
  const withSet = el(
    "fieldset",
    { class: "people-filter", id: "search-with" },
    el("legend", {}, "With these people"),
    withChoices,
    modes,
  );
  const withoutSet = el(
    "fieldset",
    { class: "people-filter", id: "search-without", hidden: true },
    el("legend", {}, "Without these people"),
    withoutChoices,
  );

  function emit() {
    const chosen = (holder) =>
      [...holder.querySelectorAll("input:checked")].map((box) => Number(box.value));
    const people = chosen(withChoices);
    only.disabled = !people.length;
    if (!people.length) only.checked = false; // it needs someone: ticking a person again asks anew
    onChange({
      people,
      match: any.checked ? "any" : "all",
      without: chosen(withoutChoices),
      onlyPeople: only.checked && people.length > 0,
    });
  }
  for (const control of [all, any, only]) control.addEventListener("change", emit);

  /** One person is never both wanted and left out: ticking one side unticks the other. */
  function exclusive(other) {
    return (box) => {
      if (box.checked) {
        const twin = other.querySelector(`input[value="${box.value}"]`);
        if (twin) twin.checked = false;
      }
      emit();
    };
  }

  function show(persons) {
    const named = persons.filter((p) => !p.hidden);
    if (!named.length) {
      withChoices.replaceChildren(
        el(
          "p",
          { class: "note" },
          "No named people yet: ",
          el("a", { href: "/people", "data-nav": true }, "name faces on the People page"),
          " to search by them.",
        ),
      );
      return;
    }
    const wanted = new Set(filters.people);
    const unwanted = new Set(filters.without);
    withChoices.replaceChildren(
      ...named.map((p) =>
        chip(`search-person-${p.id}`, p.id, p.name, wanted.has(p.id), exclusive(withoutChoices)),
      ),
    );
    withoutChoices.replaceChildren(
      ...named.map((p) =>
        chip(`search-without-${p.id}`, p.id, p.name, unwanted.has(p.id), exclusive(withChoices)),
      ),
    );
    modes.hidden = false;
    withoutSet.hidden = false;
  }

  function fail(message) {
    withChoices.replaceChildren(statusLine(`People unavailable: ${message}`, "error"));
  }

  function clear() {
    for (const box of [
      ...withChoices.querySelectorAll("input"),
      ...withoutChoices.querySelectorAll("input"),
    ])
      box.checked = false;
    all.checked = true;
    only.checked = false;
    only.disabled = true;
  }

  return { elements: [withSet, withoutSet], show, fail, clear };
}

// --- objects -------------------------------------------------------------------------------

/**
 * The objects filter: a chip per label the library's images have (GET /api/v1/objects, most
 * frequent first, with how many images), photos having every chip ticked. Labels in the address
 * that the library does not list stay shown (with 0), as a folder does. `onChange` gets the
 * ticked labels.
 */
export function objectsFilter(filters, onChange) {
  const choices = el("div", { class: "chip-choices" }, statusLine("Loading objects…"));
  const set = el(
    "fieldset",
    { class: "people-filter objects-filter", id: "search-objects" },
    el("legend", {}, "Objects in the photo (all of them)"),
    choices,
  );

  function show(labels) {
    const listed = labels.map((item) => ({ label: item.label, count: item.count }));
    const known = new Set(listed.map((item) => item.label));
    for (const label of filters.objects) if (!known.has(label)) listed.push({ label, count: 0 });
    if (!listed.length) {
      choices.replaceChildren(
        el("p", { class: "note" }, "No objects detected yet: they appear as photos are processed."),
      );
      return;
    }
    const chosen = new Set(filters.objects);
    choices.replaceChildren(
      ...listed.map(({ label, count }, i) =>
        chip(
          `search-object-${i}`,
          label,
          `${label} (${count.toLocaleString()})`,
          chosen.has(label),
          () => onChange([...choices.querySelectorAll("input:checked")].map((b) => b.value)),
        ),
      ),
    );
  }

  /** A server without object detection: the filter is not offered. */
  function unavailable(error) {
    if (error.status === 404 || error.status === 405) set.hidden = true;
    else choices.replaceChildren(statusLine(`Objects unavailable: ${error.message}`, "error"));
  }

  function clear() {
    for (const box of choices.querySelectorAll("input")) box.checked = false;
  }

  return { element: set, show, unavailable, clear };
}
