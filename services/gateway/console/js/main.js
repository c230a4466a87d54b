// The console's shell: a hash router (#/customers/…), the top bar, sign-in state.
// Each page is a module exporting render(view, params) that may return a function
// stopping whatever it started (polling, timers) when the user leaves the page.
import { whenUnauthorised } from "./api.js";
import { applyStatic, lang, setLang, t } from "./i18n.js";
import { resume, session, signOut } from "./session.js";
import { notice } from "./ui.js";

const ROUTES = [
  [/^\/signin$/, "signin"],
  [/^\/set-password$/, "set_password"],
  [/^\/customers$/, "customers"],
  [/^\/customers\/([^/]+)$/, "customer360"],
  [/^\/pipeline$/, "pipeline"],
  [/^\/service$/, "service"],
  [/^\/loyalty$/, "loyalty"],
  [/^\/loyalty\/([^/]+)$/, "loyalty"],
  [/^\/churn$/, "churn"],
  [/^\/ops$/, "ops"],
  [/^\/users$/, "users"],
  [/^\/analytics$/, "analytics"],
];

let leave = null;
let navigation = 0;  // a newer navigation wins over one still loading its page

function showSession() {
  const me = session.me();
  document.getElementById("whoami").textContent = me
    ? t("signed_in_as", { subject: me.subject, tenant: me.tenant, roles: me.roles.join(", ") })
    : "";
  document.getElementById("sign-out").hidden = !me;
  document.getElementById("nav").hidden = !me;
  // A page for a permission the user lacks is not offered (the gateway refuses it anyway).
  for (const item of document.querySelectorAll("#nav [data-permission]")) {
    item.hidden = !session.may(item.dataset.permission);
  }
}

// Pages for someone not signed in yet.
const PUBLIC = new Set(["/signin", "/set-password"]);

async function route() {
  const current = ++navigation;
  const path = location.hash.replace(/^#/, "").split("?")[0] || "/customers";
  if (!session.signedIn() && !PUBLIC.has(path)) {
    // A session in the cookie (a reload, a new tab, back from single sign-on) goes on.
    const resumed = await resume();
    if (current !== navigation) return;
    if (!resumed) { location.hash = "#/signin"; return; }
  }
  let page = null;
  let params = [];
  for (const [pattern, name] of ROUTES) {
    const match = pattern.exec(path);
    if (match) { page = name; params = match.slice(1).map(decodeURIComponent); break; }
  }
  if (!page) { location.hash = "#/customers"; return; }
  const module = await import(`./pages/${page}.js`);
  if (current !== navigation) return;
  if (leave) { leave(); leave = null; }
  const view = document.getElementById("view");
  view.replaceChildren();
  // A page change folds the phone menu: its button must say so too.
  document.querySelector(".topbar").classList.remove("open");
  document.getElementById("nav-toggle").setAttribute("aria-expanded", "false");
  for (const link of document.querySelectorAll("#nav a")) {
    const here = page === link.dataset.page || (page === "customer360" && link.dataset.page === "customers");
    if (here) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  showSession();
  leave = (await module.render(view, params)) || null;
  view.focus({ preventScroll: true });
}

function start() {
  const chooser = document.getElementById("lang");
  chooser.value = lang();
  chooser.addEventListener("change", () => { setLang(chooser.value); notice(""); route(); });
  document.getElementById("sign-out").addEventListener("click", async () => {
    await signOut();
    notice("");
    location.hash = "#/signin";
  });
  const toggle = document.getElementById("nav-toggle");
  toggle.addEventListener("click", () => {
    const open = document.querySelector(".topbar").classList.toggle("open");
    toggle.setAttribute("aria-expanded", String(open));
  });
  whenUnauthorised(async () => {
    // A token from the cookie session may just have run out: the next one is asked for.
    if (session.fromCookie() && await resume()) return;
    session.end();
    notice(t("signin_expired"), "error");
    location.hash = "#/signin";
  });
  window.addEventListener("hashchange", () => { notice(""); route(); });
  applyStatic();
  route();
}

start();
