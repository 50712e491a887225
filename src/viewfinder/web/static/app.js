// Viewfinder's web UI: the shell. Signs in when the server needs a key, keeps the header's
// status current, and hands every address to the router (lib/router.js), which renders the view
// modules under views/. No build step: plain ES modules served as they are.

import { SESSION_PATH, api, setUnauthorizedHandler } from "./lib/api.js";
import { $, notify, plural } from "./lib/dom.js";
import { startRouter } from "./lib/router.js";

const STATUS_POLL_BUSY_MS = 2000;
const STATUS_POLL_IDLE_MS = 15000;

// --- the header's status ------------------------------------------------------------------------

let statusTimer = null;

/** One line for the header from GET /api/v1/status: work in progress (embedding and faces), and
 * a pause or failures, which link to the jobs page where the reasons are. */
export function summariseStatus(status) {
  const kinds = status.processing || [];
  const busy = kinds.reduce((n, k) => n + (k.counts.pending || 0) + (k.counts.running || 0), 0);
  const failed = kinds.reduce((n, k) => n + (k.counts.failed || 0), 0);
  const paused = kinds.filter((k) => k.paused);
  const parts = [];
  if (paused.length) parts.push(`Paused: ${paused.map((k) => k.kind).join(", ")}`);
  if (busy) parts.push(`Processing ${plural(busy, "item")}…`);
  if (failed) parts.push(`${failed.toLocaleString()} failed`);
  if (!parts.length) parts.push(`${plural(status.indexed ?? 0, "photo")} indexed`);
  const kind = paused.length ? "warn" : busy ? "busy" : failed ? "warn" : "";
  return { text: parts.join(" · "), kind, busy: busy > 0 || paused.length > 0 };
}

async function refreshStatus() {
  clearTimeout(statusTimer);
  const pill = $("processing");
  let busy = false;
  try {
    const summary = summariseStatus(await api("/api/v1/status"));
    pill.textContent = summary.text;
    pill.className = `pill ${summary.kind}`.trim();
    busy = summary.busy;
  } catch (error) {
    pill.textContent = `Status unavailable: ${error.message}`;
    pill.className = "pill warn";
  }
  pill.hidden = false;
  statusTimer = setTimeout(refreshStatus, busy ? STATUS_POLL_BUSY_MS : STATUS_POLL_IDLE_MS);
}

/** Views call this after they start work (an upload, a job) so the header follows at once. */
window.addEventListener("viewfinder:work", () => refreshStatus());

async function checkHealth() {
  const pill = $("health");
  try {
    const health = await api("/health");
    const ok = health && health.status === "ok";
    pill.textContent = ok ? "Server ok" : "Server degraded";
    pill.className = ok ? "pill ok" : "pill warn";
  } catch (error) {
    pill.textContent = `Server unavailable: ${error.message}`;
    pill.className = "pill error";
  }
}

// --- navigation ---------------------------------------------------------------------------------

function highlightSection(section) {
  for (const link of $("nav").querySelectorAll("a")) {
    if (section !== null && link.dataset.section === section) {
      link.setAttribute("aria-current", "page");
    } else link.removeAttribute("aria-current");
  }
}

// --- signing in ---------------------------------------------------------------------------------

// The key is sent once, to POST /api/v1/session; the server answers with an HttpOnly cookie that
// the browser sends with every request (<img> URLs included). The key is never stored here.

let routing = false;

function showSignIn(why = "") {
  clearTimeout(statusTimer);
  $("view").hidden = true;
  $("nav").hidden = true;
  $("processing").hidden = true;
  $("identity").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = why;
  $("sign-in-key").focus();
}

function showApp(session) {
  $("sign-in").hidden = true;
  $("view").hidden = false;
  $("nav").hidden = false;
  const identity = $("identity");
  identity.hidden = !session.authenticated;
  identity.textContent = session.authenticated
    ? `${session.name}${session.read_only ? " · read-only" : ""}`
    : "";
  $("sign-out").hidden = !session.authenticated;
  refreshStatus();
  if (!routing) {
    routing = true;
    startRouter($("view"), highlightSection);
  }
}

function setUpSignIn() {
  setUnauthorizedHandler(showSignIn);
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("sign-in-key");
    const key = input.value.trim();
    if (!key) return;
    $("sign-in-error").textContent = "";
    try {
      const session = await api(SESSION_PATH, { method: "POST", json: { key } });
      input.value = "";
      showApp(session);
    } catch (error) {
      $("sign-in-error").textContent = `Not signed in: ${error.message}`;
    }
  });
  $("sign-out").addEventListener("click", async () => {
    try {
      await api(SESSION_PATH, { method: "DELETE" });
    } catch (error) {
      notify(`Could not sign out: ${error.message}`, "error");
      return;
    }
    showSignIn("Signed out.");
  });
}

// --- start --------------------------------------------------------------------------------------

async function start() {
  let session = { keys_required: false, authenticated: false };
  try {
    session = await api(SESSION_PATH);
  } catch (error) {
    notify(`Could not ask the server whether it needs a key: ${error.message}`, "error");
  }
  if (session.keys_required && !session.authenticated) showSignIn();
  else showApp(session);
}

setUpSignIn();
checkHealth();
setInterval(checkHealth, 30000);
start();
