// Plots of an entity's attributes from the history service (QuantumLeap's API), with uPlot.
import { call } from "./api.js";

const uPlot = window.uPlot;
let chart = null;
let shown = null; // {entity, attrs, times (s), series: [[...]...]}

// The aggregation period that keeps a range under a few thousand points (null: raw values).
export function periodFor(seconds) {
  if (seconds <= 6 * 3600) return null;
  if (seconds <= 3 * 86400) return "minute";
  if (seconds <= 90 * 86400) return "hour";
  return "day";
}

const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];

export async function show(container, info, entity, attrs, from, to) {
  const period = periodFor((to - from) / 1000);
  const q = new URLSearchParams({ attrs: attrs.join(","), fromDate: new Date(from).toISOString(),
    toDate: new Date(to).toISOString(), limit: "10000" });
  if (period) { q.set("aggrMethod", "avg"); q.set("aggrPeriod", period); }
  if (entity.type) q.set("type", entity.type);
  let data;
  try {
    ({ data } = await call("history", `/v2/entities/${encodeURIComponent(entity.id)}?${q}`));
  } catch (error) {
    if (error.status !== 404) throw error;
    data = { index: [], attributes: [] };
  }
  const times = (data.index || []).map((t) => Date.parse(t) / 1000);
  const series = attrs.map((name) => {
    const found = (data.attributes || []).find((a) => a.attrName === name);
    return found ? found.values.map((v) => (typeof v === "number" ? v : null)) : times.map(() => null);
  });
  shown = { entity, attrs, times, series, period, live: true };
  info.textContent = `${times.length} points` + (period ? `, averaged per ${period}` : ", raw values");
  draw(container);
}

function draw(container) {
  if (chart) { chart.destroy(); chart = null; }
  container.replaceChildren();
  const width = Math.max(260, (container.clientWidth || 600) - 8);
  const opts = {
    width, height: 260, cursor: { drag: { x: true, y: false } },
    series: [{}, ...shown.attrs.map((name, i) => ({ label: name, stroke: COLOURS[i % COLOURS.length], spanGaps: true }))],
    axes: [{}, ...(shown.attrs.length ? [{}] : [])],
  };
  chart = new uPlot(opts, [shown.times, ...shown.series], container);
  container.dataset.points = String(shown.times.length);
}

export function resize(container) {
  if (chart) chart.setSize({ width: Math.max(260, container.clientWidth - 8), height: 260 });
}

// A value the live feed brought for the entity on screen: appended (raw plots only).
export function append(container, entity) {
  if (!shown || shown.period || entity.id !== shown.entity.id || !chart) return;
  const values = shown.attrs.map((name) => (entity[name] && typeof entity[name].value === "number" ? entity[name].value : null));
  if (values.every((v) => v === null)) return;
  shown.times.push(Date.now() / 1000);
  shown.series.forEach((s, i) => s.push(values[i]));
  chart.setData([shown.times, ...shown.series]);
  container.dataset.points = String(shown.times.length);
}

// What the plot shows (the zoomed range when zoomed) as CSV.
export function csv() {
  if (!shown) return "";
  let [lo, hi] = [-Infinity, Infinity];
  if (chart && chart.scales.x.min != null) [lo, hi] = [chart.scales.x.min, chart.scales.x.max];
  const rows = [["time", ...shown.attrs].join(",")];
  shown.times.forEach((t, i) => {
    if (t < lo || t > hi) return;
    rows.push([new Date(t * 1000).toISOString(), ...shown.series.map((s) => (s[i] == null ? "" : s[i]))].join(","));
  });
  return rows.join("\n") + "\n";
}

export function download(name) {
  const blob = new Blob([csv()], { type: "text/csv" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}
