// The library API on the same origin: fetch + JSON, errors carrying the server's `detail`.

export class ApiError extends Error {
  constructor(status, detail, retryAfter) {
    super(detail);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/** The server's `detail`, as text: a string, or FastAPI's list of validation errors. */
export function detailText(body, fallback) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => (d && typeof d.msg === "string" ? d.msg : JSON.stringify(d))).join("; ");
  }
  return fallback;
}

export const SESSION_PATH = "/api/v1/session";

let onUnauthorized = () => {};

/** What to do on a 401 (no key, or the session ended): app.js shows the sign-in form. */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/** A query string from an object, leaving out null, undefined and "" values; arrays repeat. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(name, String(item));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** fetch + JSON; a non-2xx answer throws ApiError carrying the server's `detail`. `json` sends a
 * JSON body, `form` a FormData; `signal` aborts (a view that is left cancels its requests). */
export async function api(path, { method = "GET", json, form, signal } = {}) {
  const init = { method, headers: { Accept: "application/json" }, signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiError(0, "the server cannot be reached", null);
  }
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401 && path !== SESSION_PATH) onUnauthorized(detailText(body, ""));
    const retry = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    throw new ApiError(
      response.status,
      detailText(body, `${response.status} ${response.statusText}`),
      Number.isFinite(retry) ? retry : null,
    );
  }
  return body;
}

/** True for the AbortError a left view's cancelled request throws: nothing to report. */
export function isAbort(error) {
  return Boolean(error && error.name === "AbortError");
}
