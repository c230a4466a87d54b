// The one way the console talks to the platform: the gateway's public API, with the
// user's bearer token. Errors arrive as RFC 9457 problem details and become Problem.
import { session } from "./session.js";

export class Problem extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    // [{field, reason}] on a 422; the field is the JSON member's name (may be dotted).
    this.errors = Array.isArray(this.body.errors) ? this.body.errors : [];
  }
}

// Called when the gateway answers 401: the token expired or was never good.
let onUnauthorised = () => {};
export function whenUnauthorised(handler) { onUnauthorised = handler; }

export async function api(path, { method = "GET", body, query, ifMatch, signal, token } = {}) {
  const url = new URL(path.startsWith("/") ? path : `/api/v1/${path}`, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) url.searchParams.append(name, one);
  }
  const headers = { Accept: "application/json" };
  const bearer = token || session.token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const form = body instanceof FormData;  // a file upload: the browser sets its boundary
  if (body !== undefined && !form) headers["Content-Type"] = "application/json";
  if (ifMatch !== undefined && ifMatch !== null) headers["If-Match"] = `"${ifMatch}"`;
  let response = null;
  for (let attempt = 0; ; attempt += 1) {
    response = await fetch(url, {
      method, headers, signal, body: body === undefined || form ? body : JSON.stringify(body),
    });
    // A busy platform refuses the excess with 503 or 429 and says when to come back: a
    // read is asked again (twice at most, after at most 5 s), never a write.
    const retryAfter = response.headers.get("Retry-After");
    const wait = retryAfter === null ? NaN : Number(retryAfter);
    if (method !== "GET" || ![429, 503].includes(response.status) || attempt >= 2 || !(wait >= 0 && wait <= 5)) break;
    await new Promise((resolve) => setTimeout(resolve, Math.max(wait, 0.2) * 1000));
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { detail: text }; }
  }
  if (!response.ok) {
    if (response.status === 401 && !token) onUnauthorised();
    throw new Problem(response.status, data);
  }
  const etag = response.headers.get("ETag");
  return { data, status: response.status, version: etag ? Number(etag.replaceAll('"', "")) : null };
}

export const get = (path, query, options = {}) => api(path, { ...options, query }).then((r) => r.data);
