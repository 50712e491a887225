// What the People and Person views share: face thumbnails, the people list with a face for each,
// the names to suggest, the face corrections ("not this person", taking a face out of a group),
// and a watch on the background work so the pages follow it without a reload.

import { api, isAbort } from "../lib/api.js";
import { el } from "../lib/dom.js";

export const faceUrl = (faceId) => `/api/v1/faces/${faceId}/thumbnail`;

/** A round face thumbnail. `alt` is "" where the text beside it already names the person. */
export function faceImage(faceId, alt = "", className = "face") {
  if (faceId === null || faceId === undefined) {
    return el("span", { class: `${className} face-blank`, "aria-hidden": "true" });
  }
  return el("img", { class: className, src: faceUrl(faceId), alt, loading: "lazy" });
}

/** The face a person is shown with: the one the server chose (`face_id`), or on a server that
 * does not choose one, their first face. */
const representative = new Map(); // person id -> face id, for this page's lifetime

export async function personFace(person, signal) {
  if ("face_id" in person) return person.face_id; // null: no face left
  if (representative.has(person.id)) return representative.get(person.id);
  const page = await api(`/api/v1/faces?person_id=${person.id}&limit=1`, { signal });
  const faceId = page.items.length ? page.items[0].id : null;
  representative.set(person.id, faceId);
  return faceId;
}

/** Every person (hidden ones too), most photos first, then by name. */
export async function listPeople(signal) {
  const people = await api("/api/v1/persons?include_hidden=true", { signal });
  return people.sort((a, b) => b.faces - a.faces || a.name.localeCompare(b.name));
}

/** A <datalist> of people's names: the suggestions of every "name" input on the page. */
export function namesList(id) {
  return el("datalist", { id });
}

export function fillNames(datalist, people, exceptId = null) {
  datalist.replaceChildren(
    ...people.filter((p) => p.id !== exceptId).map((p) => el("option", { value: p.name })),
  );
}

/** The person of that name (any letter case, as the server compares names), or undefined. */
export function personNamed(people, name) {
  const key = name.trim().toLocaleLowerCase();
  return people.find((p) => p.name.toLocaleLowerCase() === key);
}

// --- corrections ----------------------------------------------------------------------------------

const REJECT = "/api/v1/faces/{face_id}/reject";
const REMOVE_FROM_GROUP = "/api/v1/faces/clusters/{cluster_id}/faces/{face_id}";

/** The API's routes (from its OpenAPI document, read once): the corrections below use the faces
 * backend's newer routes where this server has them. Asking first, rather than trying and
 * falling back on a 404, keeps the browser's console free of errors. */
let routes = null;
function hasRoute(path) {
  routes ||= api("/openapi.json")
    .then((doc) => new Set(Object.keys(doc.paths || {})))
    .catch(() => new Set());
  return routes.then((paths) => paths.has(path));
}

/** "Not this person": the face loses the person and no automatic run gives it back (the reject
 * route); on a server without that route the face is un-named, which automatic runs respect too. */
export async function notThisPerson(faceId, personId) {
  if (await hasRoute(REJECT)) {
    return api(`/api/v1/faces/${faceId}/reject`, { method: "POST", json: { person_id: personId } });
  }
  return api(`/api/v1/faces/${faceId}/unassign`, { method: "POST" });
}

/** Take a face out of an unnamed group: it is not put back there (nor given the name the group
 * gets later); on a server without that route the face is un-named instead. */
export async function removeFromGroup(clusterId, faceId) {
  if (await hasRoute(REMOVE_FROM_GROUP)) {
    const group = encodeURIComponent(clusterId);
    return api(`/api/v1/faces/clusters/${group}/faces/${faceId}`, { method: "DELETE" });
  }
  return api(`/api/v1/faces/${faceId}/unassign`, { method: "POST" });
}

// --- following the background work ------------------------------------------------------------

const BUSY_MS = 3000;
const IDLE_MS = 15000;

/** True while faces are still being found or organised: face (or any) tasks pending or running,
 * or a faces job (the debounced organise job, a clustering run) waiting or running. */
export function facesBusy(status) {
  const tasks = (status.processing || []).some(
    (k) => (k.counts.pending || 0) + (k.counts.running || 0) > 0,
  );
  const jobs = [...(status.running_jobs || []), ...(status.recent_jobs || [])].some(
    (j) => j.kind.startsWith("faces") && (j.state === "pending" || j.state === "running"),
  );
  return tasks || jobs;
}

/**
 * Call `refresh(busy)` now (the promise returned resolves after it), every few seconds while
 * faces are being processed, every 15 s otherwise, and at once when a view announces work
 * ("viewfinder:work"). Stops with `signal`.
 * `refresh` gets `busy` so the page can say that it is following the work.
 */
export function followWork(refresh, signal) {
  let timer = null;
  let running = null; // the tick in progress
  let again = false; // work was announced during it: tick once more straight after
  const tick = async () => {
    clearTimeout(timer);
    if (signal.aborted) return;
    if (running) {
      again = true;
      return running;
    }
    let busy = false;
    running = (async () => {
      try {
        busy = facesBusy(await api("/api/v1/status", { signal }));
      } catch (error) {
        if (isAbort(error)) return;
        console.warn("could not read the background work:", error.message);
      }
      try {
        await refresh(busy);
      } catch (error) {
        if (!isAbort(error)) console.warn("could not refresh:", error.message);
      }
    })();
    await running;
    running = null;
    if (signal.aborted) return;
    const delay = again ? 0 : busy ? BUSY_MS : IDLE_MS;
    again = false;
    timer = setTimeout(tick, delay);
  };
  window.addEventListener("viewfinder:work", tick);
  signal.addEventListener("abort", () => {
    clearTimeout(timer);
    window.removeEventListener("viewfinder:work", tick);
  });
  return tick(); // resolves once the first refresh is done
}
