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

/** The face a person is shown with: the one the server chose (the persons list carries it once
 * the faces backend sends one), else their first face. */
const representative = new Map(); // person id -> face id, for this page's lifetime

export async function personFace(person, signal) {
  const chosen = person.face_id ?? person.representative_face_id ?? person.cover_face_id;
  if (chosen !== undefined && chosen !== null) return chosen;
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

/** "Not this person": the face loses the person and no automatic run gives it back. Uses the
 * faces backend's reject route; where that route does not exist yet (a 404 or 405 that names no
 * face or person) the face is un-named instead, which automatic runs also respect. */
export async function notThisPerson(faceId, personId) {
  try {
    return await api(`/api/v1/faces/${faceId}/reject`, {
      method: "POST",
      json: { person_id: personId },
    });
  } catch (error) {
    if (!routeMissing(error)) throw error;
  }
  return api(`/api/v1/faces/${faceId}/unassign`, { method: "POST" });
}

/** Take a face out of an unnamed group (it will not be put back there); falls back to un-naming
 * the face where the route is missing. */
export async function removeFromGroup(clusterId, faceId) {
  const path = `/api/v1/faces/clusters/${encodeURIComponent(clusterId)}/faces/${faceId}/remove`;
  try {
    return await api(path, { method: "POST" });
  } catch (error) {
    if (!routeMissing(error)) throw error;
  }
  return api(`/api/v1/faces/${faceId}/unassign`, { method: "POST" });
}

/** FastAPI's answer for an address it has no route for ("Not Found", "Method Not Allowed"), as
 * opposed to a 404 that names what is missing ("face 3 does not exist"). */
function routeMissing(error) {
  return (
    (error.status === 404 && error.message === "Not Found") ||
    (error.status === 405 && error.message === "Method Not Allowed")
  );
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
        busy = facesBusy(await workStatus(signal));
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

/** GET /api/v1/status, or (on a server without it) the embedding counts and the faces jobs. */
async function workStatus(signal) {
  try {
    return await api("/api/v1/status", { signal });
  } catch (error) {
    if (!routeMissing(error)) throw error;
  }
  const [processing, jobs] = await Promise.all([
    api("/api/v1/jobs/processing", { signal }),
    api("/api/v1/jobs", { signal }),
  ]);
  return { processing: [processing], recent_jobs: jobs };
}
