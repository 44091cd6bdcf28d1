// The map: every entity with a location, on the offline outline of the world's land (Natural
// Earth 110m, public domain, vendored), with map tiles added when the browser can reach them.
// Markers are SVG shapes a keyboard cannot reach: the list under the map names each located
// entity with a button that centres the map on it and shows its label.
import { el } from "./api.js";
import { LABELS, status } from "./fresh.js";

const L = window.L;
const TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
const FRESH = { green: "#1b873f", yellow: "#b58a00", red: "#c62828", unknown: "#777" };
let map = null;
let layer = null;
let tiles = false;

export function position(entity) {
  const loc = entity.location;
  if (!loc) return null;
  const v = loc.value;
  if (typeof v === "string") {
    const [lat, lon] = v.split(",").map(Number);
    return Number.isFinite(lat) && Number.isFinite(lon) ? [lat, lon] : null;
  }
  if (v && v.type === "Point" && Array.isArray(v.coordinates)) return [v.coordinates[1], v.coordinates[0]];
  return null;
}

function tilesReachable() {
  return new Promise((resolve) => {
    const img = new Image();
    const timer = setTimeout(() => resolve(false), 3000);
    img.onload = () => { clearTimeout(timer); resolve(true); };
    img.onerror = () => { clearTimeout(timer); resolve(false); };
    img.src = TILES.replace("{z}/{x}/{y}", "0/0/0");
  });
}

async function init(container) {
  map = L.map(container, { worldCopyJump: true }).setView([20, 0], 2);
  const outline = await (await fetch("/static/vendor/world-atlas/world-land.geojson")).json();
  L.geoJSON(outline, { style: { color: "#7a8b6f", weight: 1, fillColor: "#e8ecd9", fillOpacity: 1 },
    interactive: false }).addTo(map);
  layer = L.layerGroup().addTo(map);
  if (navigator.onLine && await tilesReachable()) {
    tiles = true;
    L.tileLayer(TILES, { maxZoom: 19, attribution: "© OpenStreetMap contributors" }).addTo(map);
  }
}

function scale(value, lo, hi) {
  const x = hi > lo ? (value - lo) / (hi - lo) : 0.5;
  return `hsl(${Math.round(240 - 240 * x)}, 75%, 45%)`;
}

export async function render(container, info, entities, attribute, list) {
  if (!map) await init(container);
  map.invalidateSize();
  layer.clearLayers();
  const items = [];
  const located = entities.filter((e) => position(e));
  const values = attribute ? located.map((e) => e[attribute] && e[attribute].value).filter((v) => typeof v === "number") : [];
  const [lo, hi] = [Math.min(...values), Math.max(...values)];
  const bounds = [];
  for (const e of located) {
    const at = position(e);
    bounds.push(at);
    const v = attribute && e[attribute] ? e[attribute].value : undefined;
    const colour = attribute ? (typeof v === "number" ? scale(v, lo, hi) : FRESH.unknown) : FRESH[status(e)];
    const label = `${e.id}${attribute ? `: ${v ?? "-"}` : ""}`;
    const marker = L.circleMarker(at, { radius: 8, color: "#222", weight: 1, fillColor: colour, fillOpacity: 0.9 })
      .bindTooltip(label).addTo(layer);
    const shown = attribute ? label : `${e.id} (${LABELS[status(e)] || status(e)})`;
    items.push(el("li", {}, el("button", { type: "button", "data-id": e.id, onclick: () => {
      map.setView(at, Math.max(map.getZoom(), tiles ? 12 : 4));
      marker.openTooltip();
    } }, shown)));
  }
  if (list) list.replaceChildren(...items);
  info.textContent = `${located.length} located entities`;
  container.dataset.markers = String(located.length);
  if (bounds.length) map.fitBounds(bounds, { maxZoom: tiles ? 12 : 4, padding: [30, 30] });
}
