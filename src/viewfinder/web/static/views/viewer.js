// The photo viewer (/photos/:id), an overlay above the grid that opened it: the preview with the
// faces (and, on demand, the detected objects) drawn on it, the photo's details, the text read in
// it and its objects (viewer-content.js), similar photos, previous/next through the opening
// grid's list (lib/photos.js setViewerList; the timeline's order on a direct load), delete and
// add to a collection. Keys: ArrowLeft/ArrowRight step, Escape closes; focus stays in the
// overlay and returns to the photo's tile on close.
//
// After a delete the viewer sends `viewfinder:deleted` (detail: {id}) on window: any grid
// showing the photo drops its tile.

import { api, isAbort, query } from "../lib/api.js";
import {
  button,
  el,
  formatBytes,
  formatDateTime,
  notify,
  plural,
  statusLine,
  useStyles,
} from "../lib/dom.js";
import { PhotoGrid, getViewerList, photoTile, setViewerList } from "../lib/photos.js";
import { closeOverlay, navigate } from "../lib/router.js";
import { objectBoxes, objectsSection, textSection } from "./viewer-content.js";
import { collectionPicker } from "./viewer-collections.js";

const SIMILAR = 12;
const DIRECT_PAGE = 500; // a direct load looks for the photo in the timeline this many at a time
const DIRECT_PAGES = 10;
// EXIF times carry no zone and are stored as UTC: shown in UTC they read as the camera's clock.
const TAKEN = new Intl.DateTimeFormat(undefined, {
  dateStyle: "full",
  timeStyle: "short",
  timeZone: "UTC",
});
const FOCUSABLE = "a[href], button:not([disabled]), input, select, textarea, [tabindex]";

// Which toolbar control had focus when the viewer stepped, so the next photo's viewer puts it
// back there (holding Enter on "Next" keeps stepping).
let refocus = null;

// One keydown listener for every photo: between one photo's viewer and the next (the step
// replaces the address, then the next viewer is set up) a key has no viewer to go to; it waits
// for the next one instead of being lost.
const KEYS = ["Escape", "ArrowLeft", "ArrowRight"];
let keyHandler = null;
let queuedKey = null;
let listening = false;

function onDocumentKey(event) {
  if (keyHandler) keyHandler(event);
  else if (location.pathname.startsWith("/photos/") && KEYS.includes(event.key)) {
    event.preventDefault();
    queuedKey = event.key;
  }
}

/** The newest-first order of the whole library, as far as it takes to find `id`: the list a
 * photo opened directly (a reload, a shared address) steps through. */
async function timelineList(id, signal) {
  const ids = [];
  let offset = 0;
  let total = Infinity;
  const more = async () => {
    if (offset >= total) return false;
    const page = await api(
      `/api/v1/assets${query({ sort: "newest", limit: DIRECT_PAGE, offset })}`,
      { signal },
    );
    total = page.total;
    offset += page.items.length;
    ids.push(...page.items.map((a) => a.id));
    if (!page.items.length) total = offset;
    return page.items.length > 0;
  };
  for (let i = 0; i < DIRECT_PAGES && !ids.includes(id); i += 1) {
    if (!(await more())) break;
  }
  return { ids, more: offset < total ? more : null, label: "Photos" };
}

/** The faces as boxes over the image: positions in percent of the original's size, so they
 * follow the image at any displayed size. Named faces link to their person. */
function faceBoxes(asset, faces, names) {
  return faces.map((face) => {
    const [x1, y1, x2, y2] = face.box;
    const name = names(face);
    const label = face.person_id
      ? el("a", { class: "face-name", href: `/people/${face.person_id}`, "data-nav": true }, name)
      : el("span", { class: "face-name unnamed" }, name);
    const box = el("div", { class: "face-box" }, label);
    box.style.left = `${(100 * x1) / asset.width}%`;
    box.style.top = `${(100 * y1) / asset.height}%`;
    box.style.width = `${(100 * (x2 - x1)) / asset.width}%`;
    box.style.height = `${(100 * (y2 - y1)) / asset.height}%`;
    return box;
  });
}

/** A face's name: the API's person_name, else the person's name from GET /api/v1/persons. */
async function faceNamer(faces, signal) {
  const byId = new Map();
  if (faces.some((f) => f.person_id && !f.person_name)) {
    try {
      for (const person of await api("/api/v1/persons", { signal }))
        byId.set(person.id, person.name);
    } catch (error) {
      if (isAbort(error)) throw error;
    }
  }
  return (face) =>
    face.person_name ||
    byId.get(face.person_id) ||
    (face.person_id ? `Person ${face.person_id}` : "Unnamed");
}

function detailRow(term, ...value) {
  return [el("dt", {}, term), el("dd", {}, ...value)];
}

/** What the camera wrote (GET /api/v1/assets/{id}/metadata): only the fields it did write. */
function cameraRows(camera) {
  if (!camera) return [];
  const make = camera.camera_make || "";
  const model = camera.camera_model || "";
  const body = model.toLowerCase().startsWith(make.toLowerCase())
    ? model
    : `${make} ${model}`.trim();
  const exposure = [
    camera.f_number ? `f/${camera.f_number}` : "",
    camera.exposure_time ? `${camera.exposure_time} s` : "",
    camera.iso ? `ISO ${camera.iso}` : "",
  ].filter(Boolean);
  let focal = camera.focal_length_mm ? `${camera.focal_length_mm} mm` : "";
  if (focal && camera.focal_length_35mm && camera.focal_length_35mm !== camera.focal_length_mm) {
    focal += ` (${camera.focal_length_35mm} mm in 35 mm terms)`;
  }
  const place =
    camera.latitude !== null && camera.longitude !== null && camera.latitude !== undefined
      ? `${camera.latitude.toFixed(5)}, ${camera.longitude.toFixed(5)}`
      : "";
  return [
    body ? detailRow("Camera", body) : [],
    camera.lens ? detailRow("Lens", camera.lens) : [],
    exposure.length ? detailRow("Exposure", exposure.join(" · ")) : [],
    focal ? detailRow("Focal length", focal) : [],
    camera.flash_fired === null || camera.flash_fired === undefined
      ? []
      : detailRow("Flash", camera.flash_fired ? "Fired" : "Did not fire"),
    place ? detailRow("Location", place) : [],
    camera.software ? detailRow("Software", camera.software) : [],
  ].flat();
}

function processingNote(asset) {
  const states = Object.entries(asset.processing || {});
  if (!states.length) return null;
  const waiting = states.filter(([, state]) => state !== "done");
  if (!waiting.length)
    return el("p", { class: "note" }, "Processed: searchable and in similar photos.");
  return el(
    "p",
    { class: "note" },
    `Still processing: ${waiting.map(([kind, state]) => `${kind} ${state}`).join(", ")}.`,
  );
}

function details(asset, camera) {
  const folder = asset.folder
    ? el("a", { href: `/folders${query({ path: asset.folder })}`, "data-nav": true }, asset.folder)
    : "Top level";
  return el(
    "dl",
    { class: "details" },
    detailRow(
      "Taken",
      asset.captured_at
        ? TAKEN.format(new Date(asset.captured_at))
        : "Unknown (no date in the file)",
    ),
    detailRow("Added", formatDateTime(asset.created_at)),
    detailRow("Folder", folder),
    detailRow(
      "Dimensions",
      `${asset.width.toLocaleString()} × ${asset.height.toLocaleString()} px`,
    ),
    detailRow("Size", formatBytes(asset.size_bytes)),
    detailRow("Type", asset.content_type),
    cameraRows(camera),
    asset.original_uri ? detailRow("Stored at", asset.original_uri) : null,
  );
}

export async function render(root, { params, signal }) {
  useStyles("views/viewer.css");
  const id = Number(params.id);
  const opener = document.activeElement;

  const title = el("h1", { id: "viewer-title", class: "viewer-title" }, "Photo");
  const close = button("Close", () => closeOverlay("/"), {
    class: "ghost",
    "data-control": "close",
    "aria-keyshortcuts": "Escape",
  });
  const prev = button("Previous", () => step(-1), {
    class: "ghost",
    "data-control": "prev",
    "aria-keyshortcuts": "ArrowLeft",
    disabled: true,
  });
  const next = button("Next", () => step(1), {
    class: "ghost",
    "data-control": "next",
    "aria-keyshortcuts": "ArrowRight",
    disabled: true,
  });
  const position = el("span", { class: "position", "aria-live": "polite" });
  const actions = el("div", { class: "viewer-actions" });
  const toolbar = el("div", { class: "viewer-toolbar" }, close, prev, next, position, actions);
  const frame = el("div", { class: "frame" });
  const stage = el("div", { class: "stage" }, frame);
  const panel = el("div", { class: "viewer-panel" }, title, statusLine("Loading the photo…"));
  const dialog = el(
    "div",
    {
      class: "viewer",
      role: "dialog",
      "aria-modal": "true",
      "aria-labelledby": "viewer-title",
      tabindex: "-1",
    },
    toolbar,
    el("div", { class: "viewer-body" }, stage, panel),
  );
  root.append(dialog);

  let list = getViewerList();
  let asset = null;
  let similarGrid = null;
  let picker = null;
  let exhausted = false; // the list's `more` said there is nothing after its last photo

  function focusStart() {
    const keep = refocus && toolbar.querySelector(`[data-control="${refocus}"]:not([disabled])`);
    refocus = null;
    (keep || dialog).focus({ preventScroll: true });
  }

  function updateSteps() {
    const index = list.ids.indexOf(id);
    prev.disabled = index <= 0;
    const more = Boolean(list.more) && !exhausted;
    next.disabled = index < 0 || (index >= list.ids.length - 1 && !more);
    position.textContent =
      index >= 0
        ? `${(index + 1).toLocaleString()} of ${list.ids.length.toLocaleString()}${more ? "+" : ""}`
        : "";
  }

  async function step(delta) {
    let index = list.ids.indexOf(id);
    if (index < 0) return;
    if (delta > 0 && index + 1 >= list.ids.length) {
      if (!list.more || exhausted || !(await list.more())) {
        exhausted = true;
        updateSteps();
        return;
      }
      index = list.ids.indexOf(id);
    }
    const target = list.ids[index + delta];
    if (target === undefined) return;
    const focused = document.activeElement?.dataset?.control;
    refocus = focused === "prev" || focused === "next" ? focused : null;
    navigate(`/photos/${target}`, { replace: true });
  }

  async function remove() {
    const name = asset.original_filename;
    if (
      !confirm(
        `Delete “${name}”? It is removed from the library with its thumbnails, faces and search entry.`,
      )
    )
      return;
    const index = list.ids.indexOf(id);
    try {
      await api(`/api/v1/assets/${id}`, { method: "DELETE" });
    } catch (error) {
      notify(`Could not delete ${name}: ${error.message}`, "error");
      return;
    }
    window.dispatchEvent(new CustomEvent("viewfinder:deleted", { detail: { id } }));
    window.dispatchEvent(new Event("viewfinder:work"));
    notify(`Deleted ${name}`);
    const at = list.ids.indexOf(id);
    if (at >= 0) list.ids.splice(at, 1); // a grid that does not listen for the event
    if (index >= 0 && index >= list.ids.length && list.more) await list.more();
    const target = index < 0 ? undefined : (list.ids[index] ?? list.ids[index - 1]);
    if (target === undefined) closeOverlay("/");
    else navigate(`/photos/${target}`, { replace: true });
  }

  function onKey(event) {
    // A viewer the router has already replaced (a key while its photo still loaded) ignores it.
    if (!dialog.isConnected) return;
    if (event.key === "Tab") return trapFocus(event);
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    const typing = event.target.closest?.("input, textarea, select");
    if (event.key === "Escape") {
      if (picker && picker.isOpen()) picker.close();
      else closeOverlay("/");
      event.preventDefault();
    } else if (!typing && event.key === "ArrowLeft") {
      event.preventDefault();
      step(-1);
    } else if (!typing && event.key === "ArrowRight") {
      event.preventDefault();
      step(1);
    }
  }

  /** Tab and Shift+Tab cycle through the overlay's controls only. */
  function trapFocus(event) {
    const items = [...dialog.querySelectorAll(FOCUSABLE)].filter(
      (node) => node.tabIndex >= 0 && !node.closest("[hidden]") && node.getClientRects().length,
    );
    if (!items.length) return;
    const first = items[0];
    const last = items.at(-1);
    const inside = dialog.contains(document.activeElement) && document.activeElement !== dialog;
    if (event.shiftKey && (!inside || document.activeElement === first)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (!inside || document.activeElement === last)) {
      event.preventDefault();
      first.focus();
    }
  }

  if (!listening) {
    document.addEventListener("keydown", onDocumentKey);
    listening = true;
  }
  keyHandler = onKey;
  // The handler is set before the first await: only a key from before this render waits.
  const pendingKey = queuedKey;
  queuedKey = null;
  if (pendingKey === "Escape") closeOverlay("/");
  const cleanup = () => {
    if (keyHandler === onKey) keyHandler = null;
    if (similarGrid) similarGrid.destroy();
    // After the router has made the page live again: the photo's tile takes focus (the last
    // photo shown, as in Immich), else whatever opened the viewer.
    setTimeout(() => {
      if (document.body.classList.contains("has-overlay")) return; // stepped to another photo
      const tile = document.querySelector(`#view [data-asset-id="${id}"]`);
      const target = tile || (opener && opener.isConnected ? opener : null);
      if (target) {
        target.focus({ preventScroll: true });
        target.scrollIntoView({ block: "nearest" });
      }
    }, 0);
  };
  focusStart();

  let camera = null;
  try {
    // The asset with what its camera wrote; a server without the metadata route: the asset.
    const found = await api(`/api/v1/assets/${id}/metadata`, { signal }).catch((error) => {
      if (error.status === 404 && error.message === "Not Found") return null;
      throw error;
    });
    if (found) ({ asset, camera } = found);
    else asset = await api(`/api/v1/assets/${id}`, { signal });
  } catch (error) {
    if (isAbort(error)) return cleanup;
    title.textContent = error.status === 404 ? "Photo not found" : "Could not load the photo";
    panel.replaceChildren(
      title,
      statusLine(
        error.status === 404
          ? "This photo is not in the library (it may have been deleted)."
          : `${error.message}. Close the viewer and try again.`,
        "error",
      ),
      el("p", {}, el("a", { href: "/", "data-nav": true }, "Go to your photos")),
    );
    return cleanup;
  }

  title.textContent = asset.original_filename;
  const image = el("img", {
    class: "photo",
    src: asset.preview_url,
    alt: asset.original_filename, // the caption is text in the panel beside it
    width: asset.width,
    height: asset.height,
    decoding: "async",
  });
  const boxes = el("div", { class: "face-boxes" });
  frame.style.setProperty("--ratio", String(asset.width / Math.max(1, asset.height)));
  frame.style.setProperty("--width", `${asset.width}px`);
  const objectLayer = objectBoxes(asset);
  frame.replaceChildren(...[image, boxes, objectLayer].filter(Boolean));

  const original = el(
    "a",
    {
      class: "button ghost",
      href: asset.file_url,
      target: "_blank",
      rel: "noopener",
      download: asset.original_filename,
    },
    "Original",
  );
  const toggleFaces = button(
    "Hide faces",
    () => {
      const hidden = boxes.classList.toggle("off");
      toggleFaces.textContent = hidden ? "Show faces" : "Hide faces";
      toggleFaces.setAttribute("aria-pressed", String(!hidden));
    },
    { class: "ghost", "aria-pressed": "true", hidden: true },
  );
  // Object boxes start hidden: faces are what most people look for on a photo.
  const toggleObjects = button(
    "Show objects",
    () => {
      const hidden = objectLayer.classList.toggle("off");
      toggleObjects.textContent = hidden ? "Show objects" : "Hide objects";
      toggleObjects.setAttribute("aria-pressed", String(!hidden));
    },
    { class: "ghost", "aria-pressed": "false", hidden: !objectLayer },
  );
  picker = collectionPicker(asset, signal);
  const del = button("Delete", remove, { class: "ghost danger", "data-control": "delete" });
  actions.append(toggleFaces, toggleObjects, original, picker.toggle, del);

  const faceList = el("ul", { class: "faces viewer-faces", "aria-label": "People in this photo" });
  const facesSection = el(
    "section",
    { class: "viewer-section", "aria-labelledby": "viewer-people" },
    el("h2", { id: "viewer-people" }, "People"),
    faceList,
  );
  facesSection.hidden = true;
  const similar = el("div", { class: "similar" }, statusLine("Looking for similar photos…"));
  panel.replaceChildren(
    ...[
      title,
      asset.caption ? el("p", { class: "caption" }, asset.caption) : null,
      picker.panel,
      details(asset, camera),
      processingNote(asset),
      textSection(asset),
      facesSection,
      objectsSection(asset),
      el(
        "section",
        { class: "viewer-section", "aria-labelledby": "viewer-similar" },
        el("h2", { id: "viewer-similar" }, "Similar photos"),
        similar,
      ),
    ].filter(Boolean), // replaceChildren would show a null as the text "null"
  );

  // The list to step through: the opening grid's, or the timeline's on a direct load.
  if (!list.ids.includes(id)) {
    try {
      list = await timelineList(id, signal);
      setViewerList(list.ids, list.more, list.label);
    } catch (error) {
      if (isAbort(error)) return cleanup;
      list = { ids: [], more: null, label: "" };
    }
  }
  updateSteps();
  focusStart();
  if (pendingKey === "ArrowLeft" || pendingKey === "ArrowRight")
    step(pendingKey === "ArrowLeft" ? -1 : 1);

  showFaces(asset, boxes, faceList, facesSection, toggleFaces, signal);
  showSimilar();
  return cleanup;

  async function showSimilar() {
    if (asset.processing && asset.processing.embed && asset.processing.embed !== "done") {
      similar.replaceChildren(statusLine("Similar photos appear once this photo is processed."));
      return;
    }
    try {
      const result = await api("/api/v1/search", {
        method: "POST",
        json: { asset_id: id, k: SIMILAR },
        signal,
      });
      const hits = result.hits.map((h) => h.asset);
      if (!hits.length) {
        similar.replaceChildren(statusLine("No similar photos in the library."));
        return;
      }
      similarGrid = new PhotoGrid({ label: "Similar photos", tile: (a) => photoTile(a) });
      similar.replaceChildren(similarGrid.element);
      similarGrid.add(hits);
      // A similar photo opens in place; its list is this photo and its similar ones.
      similarGrid.element.addEventListener("click", (event) => {
        const tile = event.target.closest("[data-asset-id]");
        if (!tile || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
        event.preventDefault();
        setViewerList([id, ...hits.map((a) => a.id)], null, "Similar photos");
        navigate(`/photos/${tile.dataset.assetId}`, { replace: true });
      });
    } catch (error) {
      if (isAbort(error)) return;
      similar.replaceChildren(
        statusLine(`Could not find similar photos: ${error.message}`, "error"),
      );
    }
  }
}

async function showFaces(asset, boxes, list, section, toggle, signal) {
  let faces;
  let names;
  try {
    faces = await api(`/api/v1/assets/${asset.id}/faces`, { signal });
    names = await faceNamer(faces, signal);
  } catch (error) {
    if (!isAbort(error)) {
      section.hidden = false;
      list.replaceChildren(
        el("li", { class: "note error" }, `Could not load the faces: ${error.message}`),
      );
    }
    return;
  }
  if (!faces.length) return;
  boxes.replaceChildren(...faceBoxes(asset, faces, names));
  toggle.hidden = false;
  section.hidden = false;
  const heading = section.querySelector("h2");
  heading.textContent = `People (${plural(faces.length, "face")})`;
  list.replaceChildren(
    ...faces.map((face) => {
      const name = names(face);
      const img = el("img", {
        src: face.thumbnail_url,
        alt: "",
        class: "face",
        loading: "lazy",
        width: 56,
        height: 56,
      });
      const body = face.person_id
        ? el(
            "a",
            { href: `/people/${face.person_id}`, "data-nav": true },
            img,
            el("span", {}, name),
          )
        : el("span", { class: "unnamed" }, img, el("span", {}, name));
      return el("li", { class: "face-card" }, body);
    }),
  );
}
