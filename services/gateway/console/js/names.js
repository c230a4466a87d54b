// Customer names for pages whose rows carry only a customer id (deals, tickets,
// alerts): asked once per id through the gateway, like any other read.
import { get } from "./api.js";
import { h } from "./ui.js";

const known = new Map();

export async function nameCustomers(ids) {
  const wanted = [...new Set(ids)].filter((id) => id && !known.has(id)).slice(0, 50);
  await Promise.all(wanted.map(async (id) => {
    try { known.set(id, (await get(`customers/${encodeURIComponent(id)}`)).name || id); } catch { known.set(id, id); }
  }));
}

export function customerLink(id) {
  return h("a", { href: `#/customers/${encodeURIComponent(id)}` }, known.get(id) || id.slice(0, 8));
}
