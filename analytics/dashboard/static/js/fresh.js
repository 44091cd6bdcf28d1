// Freshness: green while an entity reports within 1.5 times its expected interval, yellow up to 3
// times, red past that. The interval is, first found: the user's setting for the entity, then for
// its type (kept in this browser), the dashboard's -expect for the type, the interval learnt from
// the history (the median gap of the entity type's last values), the dashboard's default.
import { call } from "./api.js";

export const settings = { server: {}, fallback: 300, learnt: {} };
const KEY = "waziup.expected";

function local() {
  try { return JSON.parse(localStorage.getItem(KEY) || "{}"); } catch { return {}; }
}

export function setExpected(kind, name, seconds) {
  const all = local();
  all[`${kind}:${name}`] = seconds;
  localStorage.setItem(KEY, JSON.stringify(all));
}

export function expected(entity) {
  const all = local();
  return all[`entity:${entity.id}`] || all[`type:${entity.type}`] || settings.server[entity.type]
    || settings.learnt[entity.type] || settings.fallback;
}

export function status(entity, now = Date.now()) {
  if (!entity.lastSeen) return "unknown";
  const age = (now - entity.lastSeen) / 1000;
  const interval = expected(entity);
  return age <= 1.5 * interval ? "green" : age <= 3 * interval ? "yellow" : "red";
}

export const LABELS = { green: "fresh", yellow: "late", red: "silent", unknown: "unknown" };

const asked = new Set();
// Learn the type's interval from the history once per type (a few values of its entities).
export async function learn(type) {
  if (!type || asked.has(type)) return;
  asked.add(type);
  try {
    const { data } = await call("history", `/v2/types/${encodeURIComponent(type)}?lastN=20`);
    const gaps = [];
    for (const entity of data.entities || []) {
      const index = (entity.index || []).map((t) => Date.parse(t)).sort((a, b) => a - b);
      for (let i = 1; i < index.length; i++) if (index[i] > index[i - 1]) gaps.push((index[i] - index[i - 1]) / 1000);
    }
    if (gaps.length >= 3) {
      gaps.sort((a, b) => a - b);
      settings.learnt[type] = Math.max(1, Math.round(gaps[Math.floor(gaps.length / 2)]));
    }
  } catch { /* no history of the type: the default stays */ }
}

export function ago(ms, now = Date.now()) {
  if (!ms) return "never";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ms).toLocaleString();
}
