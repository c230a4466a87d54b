// Names for pages whose rows carry only an id: customers (deals, tickets, alerts) and
// rewards (the timeline): asked once per id through the gateway, like any other read.
import { get } from "./api.js";
import { h } from "./ui.js";

const known = new Map();
const rewards = new Map();

// The names of ``ids`` (at most ``limit`` new ones) into ``names``, read at ``path(id)``.
async function learn(names, ids, path, limit) {
  const wanted = [...new Set(ids)].filter((id) => id && !names.has(id)).slice(0, limit);
  await Promise.all(wanted.map(async (id) => {
    try { names.set(id, (await get(path(encodeURIComponent(id)))).name || id); } catch { names.set(id, id); }
  }));
}

export function nameCustomers(ids) {
  return learn(known, ids, (id) => `customers/${id}`, 50);
}

export function nameRewards(ids) {
  return learn(rewards, ids, (id) => `loyalty/rewards/${id}`, 20);
}

export function rewardName(id) {
  return rewards.get(id) || id;
}

export function customerLink(id) {
  return h("a", { href: `#/customers/${encodeURIComponent(id)}` }, known.get(id) || id.slice(0, 8));
}
