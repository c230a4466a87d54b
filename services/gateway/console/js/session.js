// Who is signed in: the bearer token (kept for this browser tab only) and what the
// gateway says it may do (GET /api/v1/me). The permissions only decide which buttons
// are shown; the gateway checks every request whatever is shown.
const TOKEN_KEY = "crm.console.token";
const ME_KEY = "crm.console.me";

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  me: () => JSON.parse(sessionStorage.getItem(ME_KEY) || "null"),
  signedIn() { return Boolean(this.token() && this.me()); },
  may(permission) { return (this.me()?.permissions || []).includes(permission); },
  hasRole(role) { return (this.me()?.roles || []).includes(role); },
  start(token, me) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(ME_KEY, JSON.stringify(me));
  },
  end() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ME_KEY);
  },
};
