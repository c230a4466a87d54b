// Who is signed in: the bearer token (kept for this browser tab only) and what the
// gateway says it may do (GET /api/v1/me). The permissions only decide which buttons
// are shown; the gateway checks every request whatever is shown.
//
// Signing in with a password or through single sign-on opens a session the gateway
// keeps in an HttpOnly cookie (no script here can read it); the console trades it at
// /auth/refresh for a bearer token of a few minutes, and again before that runs out.
// A pasted token (scripts, development) is used as it is, until it expires.
const TOKEN_KEY = "crm.console.token";
const ME_KEY = "crm.console.me";
const COOKIE_KEY = "crm.console.cookie";  // "1": the token came from the cookie session
// Ask for the next token this long before the current one runs out.
const RENEW_EARLY_SECONDS = 60;

let renewal = null;

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  me: () => JSON.parse(sessionStorage.getItem(ME_KEY) || "null"),
  signedIn() { return Boolean(this.token() && this.me()); },
  fromCookie: () => sessionStorage.getItem(COOKIE_KEY) === "1",
  may(permission) { return (this.me()?.permissions || []).includes(permission); },
  hasRole(role) { return (this.me()?.roles || []).includes(role); },
  start(token, me, { cookie = false } = {}) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(ME_KEY, JSON.stringify(me));
    if (cookie) sessionStorage.setItem(COOKIE_KEY, "1"); else sessionStorage.removeItem(COOKIE_KEY);
  },
  end() {
    clearTimeout(renewal);
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ME_KEY);
    sessionStorage.removeItem(COOKIE_KEY);
  },
};

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { Accept: "application/json", ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text }; }
  return { ok: response.ok, status: response.status, data };
}

async function whoIs(token) {
  const response = await fetch("/api/v1/me", { headers: { Accept: "application/json", Authorization: `Bearer ${token}` } });
  return response.ok ? response.json() : null;
}

// A token from /auth/sign-in, /auth/password or /auth/refresh: kept, and renewed in time.
export async function adopt(answer) {
  const me = await whoIs(answer.access_token);
  if (!me) return false;
  session.start(answer.access_token, me, { cookie: true });
  clearTimeout(renewal);
  const seconds = Math.max(10, answer.expires_in - RENEW_EARLY_SECONDS);
  renewal = setTimeout(() => { resume(); }, seconds * 1000);
  return true;
}

// The cookie session's next token; false when there is no live session.
export async function resume() {
  const answer = await post("/auth/refresh");
  return answer.ok ? adopt(answer.data) : false;
}

// A password sign-in; the answer's problem (status, detail) when refused.
export async function signIn(tenant, email, password) {
  const answer = await post("/auth/sign-in", { tenant, email, password });
  if (answer.ok && await adopt(answer.data)) return null;
  return answer;
}

export async function setPassword(token, password) {
  const answer = await post("/auth/password", { token, password });
  if (answer.ok && await adopt(answer.data)) return null;
  return answer;
}

export async function signOut() {
  const cookie = session.fromCookie();
  session.end();
  if (cookie) await post("/auth/sign-out");
}

export async function signInMethods() {
  const response = await fetch("/auth/methods", { headers: { Accept: "application/json" } });
  return response.ok ? response.json() : { password: false, single_sign_on: null };
}
