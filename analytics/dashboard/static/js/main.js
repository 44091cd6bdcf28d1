// The dashboard page: tenant picker, views, entity browser with live values and freshness.
import { allEntities, call, el, signInAgain, state } from "./api.js";
import { LABELS, ago, expected, learn, setExpected, settings, status } from "./fresh.js";
import { connect } from "./live.js";
import * as plot from "./plot.js";
import * as map from "./map.js";
import * as admin from "./admin.js";

const $ = (selector) => document.querySelector(selector);
const PAGE = 50;
const known = new Map(); // id -> entity (normalized NGSI, plus lastSeen in ms)
const view = { offset: 0, total: 0, type: "", search: "", rows: [], selected: null, current: "entities" };

function escapeRegex(text) { return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }

function remember(entity, seen) {
  const modified = entity.dateModified && Date.parse(entity.dateModified.value);
  delete entity.dateModified;
  const before = known.get(entity.id);
  entity.lastSeen = seen || modified || (before && before.lastSeen) || null;
  known.set(entity.id, entity);
  learn(entity.type);
  return entity;
}

function attrText(value) {
  if (value === null || value === undefined) return "null";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function attributeNames(entity) {
  return Object.keys(entity).filter((k) => !["id", "type", "lastSeen"].includes(k));
}

function row(entity) {
  const s = status(entity);
  return el("tr", { tabindex: "0", "data-id": entity.id, "aria-label": `${entity.id}, ${LABELS[s]}`,
    class: view.selected === entity.id ? "selected" : null,
    onclick: () => select(entity.id),
    onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); select(entity.id); } } },
  el("td", {}, el("span", { class: `fresh ${s}`, "data-status": s, text: LABELS[s] })),
  el("td", { class: "id", text: entity.id }),
  el("td", { text: entity.type }),
  el("td", {}, el("ul", { class: "attrs" }, ...attributeNames(entity).map((name) =>
    el("li", { "data-attr": name }, `${name}: `, el("strong", { text: attrText(entity[name].value) }))))),
  el("td", { class: "seen", text: ago(entity.lastSeen) }));
}

function renderRows() {
  const tbody = $("#entity-table tbody");
  tbody.replaceChildren(...view.rows.map((id) => row(known.get(id))));
  const last = Math.min(view.offset + view.rows.length, Math.max(view.total, view.rows.length));
  $("#page-info").textContent = view.rows.length ? `${view.offset + 1}–${last} of ${Math.max(view.total, last)}` : "no entity";
  $("#page-prev").disabled = view.offset === 0;
  $("#page-next").disabled = view.offset + PAGE >= view.total;
  $("#entity-count").textContent = `${view.total} entities`;
}

async function loadTypes() {
  const select = $("#entity-type");
  try {
    const { data } = await call("broker", "/v2/types?options=values&limit=1000");
    const current = select.value;
    select.replaceChildren(el("option", { value: "", text: "all types" }),
      ...data.map((t) => el("option", { value: t, text: t })));
    select.value = current;
  } catch { /* the broker answers below */ }
}

async function loadPage() {
  const q = new URLSearchParams({ limit: String(PAGE), offset: String(view.offset), options: "count",
    attrs: "dateModified,*" });
  if (view.type) q.set("type", view.type);
  if (view.search) q.set("idPattern", escapeRegex(view.search));
  try {
    const { data, total } = await call("broker", `/v2/entities?${q}`);
    view.total = Number.isFinite(total) ? total : data.length;
    view.rows = data.map((e) => remember(e).id);
    renderRows();
  } catch (error) {
    view.rows = [];
    renderRows();
    $("#entity-count").textContent = `The broker: ${error.message}`;
  }
}

function matches(entity) {
  if (view.type && entity.type !== view.type) return false;
  return !view.search || entity.id.includes(view.search);
}

function onEntity(entity) {
  const fresh = remember(entity, Date.now());
  if (matches(fresh) && !view.rows.includes(fresh.id) && view.offset === 0) {
    view.rows.unshift(fresh.id);
    view.total += 1;
    if (view.rows.length > PAGE) view.rows.pop();
    renderRows();
    if ([...$("#entity-type").options].every((o) => o.value !== fresh.type)) loadTypes();
  }
  const old = document.querySelector(`#entity-table tr[data-id="${CSS.escape(fresh.id)}"]`);
  if (old) {
    const replacement = row(fresh);
    replacement.classList.add("flash");
    const focused = document.activeElement === old;
    old.replaceWith(replacement);
    if (focused) replacement.focus();
  } else if (view.rows.includes(fresh.id)) {
    renderRows();
  }
  if (view.selected === fresh.id) plot.append($("#plot"), fresh);
  if (view.current === "map") scheduleMap();
}

function tick() {
  for (const tr of document.querySelectorAll("#entity-table tbody tr")) {
    const entity = known.get(tr.dataset.id);
    if (!entity) continue;
    const s = status(entity);
    const badge = tr.querySelector(".fresh");
    if (badge.dataset.status !== s) {
      badge.className = `fresh ${s}`; badge.dataset.status = s; badge.textContent = LABELS[s];
      tr.setAttribute("aria-label", `${entity.id}, ${LABELS[s]}`);
    }
    tr.querySelector(".seen").textContent = ago(entity.lastSeen);
  }
  if (view.current === "silent") renderSilent();
}

function renderSilent() {
  const silent = [...known.values()].filter((e) => status(e) === "red").sort((a, b) => (a.lastSeen || 0) - (b.lastSeen || 0));
  const list = $("#silent-list");
  list.replaceChildren(...(silent.length ? silent.map((e) => el("li", { "data-id": e.id },
    el("span", { class: "fresh red", text: LABELS.red }), " ",
    el("a", { href: "#entities", text: e.id, onclick: () => select(e.id) }),
    ` (${e.type}), last seen ${ago(e.lastSeen)}, expected every ${expected(e)} s`)) : [el("li", { text: "none" })]));
}

async function loadAllSeen() {
  try {
    for (const e of await allEntities({ attrs: "dateModified" })) {
      if (!known.has(e.id)) remember(e);
    }
  } catch { /* shown on the entities view */ }
}

function select(id) {
  view.selected = id;
  for (const tr of document.querySelectorAll("#entity-table tbody tr")) tr.classList.toggle("selected", tr.dataset.id === id);
  const entity = known.get(id);
  if (!entity) return;
  const detail = $("#entity-detail");
  detail.hidden = false;
  $("#detail-title").textContent = `${entity.id} (${entity.type})`;
  $("#detail-expected").value = expected(entity);
  const numeric = attributeNames(entity).filter((n) => typeof entity[n].value === "number");
  $("#plot-attrs").replaceChildren(el("legend", { text: "Attributes to plot" }), ...numeric.map((name, i) =>
    el("label", {}, el("input", { type: "checkbox", name: "attr", value: name, checked: i === 0 ? true : null }), ` ${name}`)));
  showPlot();
}

function range() {
  const choice = $("#plot-range").value;
  if (choice === "custom") {
    const from = Date.parse($("#plot-from").value), to = Date.parse($("#plot-to").value);
    if (Number.isFinite(from) && Number.isFinite(to) && to > from) return [from, to];
  }
  const seconds = Number(choice) || 3600;
  const now = Date.now();
  return [now - seconds * 1000, now + 60000];
}

async function showPlot() {
  const entity = known.get(view.selected);
  if (!entity) return;
  const attrs = [...document.querySelectorAll('#plot-attrs input[name="attr"]:checked')].map((i) => i.value);
  const [from, to] = range();
  try {
    await plot.show($("#plot"), $("#plot-info"), entity, attrs, from, to);
  } catch (error) {
    $("#plot-info").textContent = `The history: ${error.message}`;
  }
}

let mapTimer = null;
function scheduleMap() {
  clearTimeout(mapTimer);
  mapTimer = setTimeout(showMap, 300);
}

async function showMap() {
  try {
    const entities = await allEntities({ attrs: "dateModified,*" });
    for (const e of entities) remember(e);
    const numeric = new Set();
    for (const e of entities) for (const n of attributeNames(e)) if (typeof e[n].value === "number") numeric.add(n);
    const select = $("#map-colour");
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "", text: "freshness" }), ...[...numeric].sort().map((n) => el("option", { value: n, text: n })));
    select.value = numeric.has(chosen) ? chosen : "";
    await map.render($("#map"), $("#map-info"), entities.map((e) => known.get(e.id)), select.value, $("#map-list"));
  } catch (error) {
    $("#map-info").textContent = `The broker: ${error.message}`;
  }
}

function showView(name) {
  view.current = name;
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${name}`;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (name === "silent") loadAllSeen().then(renderSilent);
  if (name === "map") showMap();
  if (name === "devices") admin.devices(document);
  if (name === "subscriptions") admin.subscriptions(document);
  if (name === "rules") admin.rules(document);
}

function route() {
  const name = (location.hash || "#entities").slice(1);
  showView(document.getElementById(`view-${name}`) ? name : "entities");
}

// Tenants offered by the picker: with sign-in, those the user may read (/auth/me); else the
// ones used recently in this browser.
let offered = null;

function tenants() {
  if (offered) return offered;
  try { return JSON.parse(localStorage.getItem("waziup.tenants") || "[]"); } catch { return []; }
}

// With sign-in: who is signed in, or off to the identity manager's sign-in page.
async function account() {
  const response = await fetch("/auth/me", { headers: { Accept: "application/json" } });
  if (response.status === 401) { signInAgain(); return false; }
  const me = await response.json();
  offered = me.tenants;
  $("#account-name").textContent = me.username;
  $("#account").hidden = false;
  $("#sign-out").addEventListener("click", async () => {
    await fetch("/auth/logout", { method: "POST" });
    signInAgain();
  });
  return true;
}

function useTenant(tenant, servicePath) {
  state.tenant = tenant.trim().toLowerCase();
  state.servicePath = servicePath.trim() || "/#";
  if (!offered) {
    const list = [...new Set([state.tenant, ...tenants()])].filter(Boolean).slice(0, 20);
    localStorage.setItem("waziup.tenants", JSON.stringify(list));
  }
  $("#tenants").replaceChildren(...tenants().filter(Boolean).map((t) => el("option", { value: t })));
  const params = new URLSearchParams(location.search);
  params.set("service", state.tenant);
  params.set("servicepath", state.servicePath);
  history.replaceState(null, "", `?${params}${location.hash}`);
  known.clear();
  view.offset = 0; view.selected = null;
  $("#entity-detail").hidden = true;
  connect(onEntity, (s) => {
    const node = $("#live-status");
    node.textContent = s;
    node.classList.toggle("on", s === "live");
  }, loadPage);
  loadTypes();
  loadPage();
  route();
}

async function start() {
  const response = await fetch("/api/config");
  const options = await response.json();
  settings.server = options.expected || {};
  settings.fallback = options.defaultExpected || 300;
  state.signIn = Boolean(options.auth);
  if (state.signIn && !(await account())) return;
  for (const [name, on] of Object.entries(options.services)) {
    const link = document.querySelector(`nav a[data-view="${name === "agent" ? "devices" : name}"]`);
    if (link && !on) link.hidden = true;
  }
  admin.wireDevices(document);
  admin.wireRules(document);
  $("#tenant-form").addEventListener("submit", (event) => {
    event.preventDefault();
    useTenant($("#tenant").value, $("#servicepath").value);
  });
  $("#entity-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    view.search = $("#entity-search").value.trim();
    view.type = $("#entity-type").value;
    view.offset = 0;
    loadPage();
  });
  $("#entity-type").addEventListener("change", () => { view.type = $("#entity-type").value; view.offset = 0; loadPage(); });
  $("#page-prev").addEventListener("click", () => { view.offset = Math.max(0, view.offset - PAGE); loadPage(); });
  $("#page-next").addEventListener("click", () => { view.offset += PAGE; loadPage(); });
  $("#plot-show").addEventListener("click", showPlot);
  $("#plot-range").addEventListener("change", () => {
    for (const c of document.querySelectorAll(".custom")) c.classList.toggle("on", $("#plot-range").value === "custom");
    if ($("#plot-range").value !== "custom") showPlot();
  });
  $("#plot-csv").addEventListener("click", () => plot.download(`${view.selected || "plot"}.csv`));
  $("#plot-attrs").addEventListener("change", showPlot);
  $("#map-colour").addEventListener("change", showMap);
  for (const [button, kind] of [["#detail-expected-type", "type"], ["#detail-expected-entity", "entity"]]) {
    $(button).addEventListener("click", () => {
      const entity = known.get(view.selected);
      const seconds = Number($("#detail-expected").value);
      if (!entity || !(seconds >= 1)) return;
      setExpected(kind, kind === "type" ? entity.type : entity.id, seconds);
      tick();
    });
  }
  window.addEventListener("hashchange", route);
  let resizing = null;
  window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(() => plot.resize($("#plot")), 200); });
  setInterval(tick, 1000);
  const params = new URLSearchParams(location.search);
  // signed in without access to the default tenant: the first tenant the user may read
  const first = offered && !offered.includes("") && offered.length ? offered[0] : "";
  $("#tenant").value = params.get("service") ?? first;
  $("#servicepath").value = params.get("servicepath") || "/#";
  useTenant($("#tenant").value, $("#servicepath").value);
}

start();
