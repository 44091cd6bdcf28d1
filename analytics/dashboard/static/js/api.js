// Calls to the platform through the dashboard's /api/<service>/ forwarding, with the tenant
// (Fiware-Service) and service path the picker chose. With sign-in (-auth) the page holds no
// token: its session cookie goes along and the dashboard adds the user's token (signin.py).

export const state = { tenant: "", servicePath: "/#", token: "", signIn: false };

// A session that ended (expired, signed out elsewhere): sign in again, back to this page.
export function signInAgain() {
  location.assign(`/auth/login?next=${encodeURIComponent(location.pathname + location.search + location.hash)}`);
}

export function headers(extra = {}) {
  const h = { "Fiware-ServicePath": state.servicePath || "/", ...extra };
  if (state.tenant) h["Fiware-Service"] = state.tenant;
  if (state.token) h["Authorization"] = "Bearer " + state.token;
  return h;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body && (body.description || body.error) ? `${status}: ${body.description || body.error}` : `HTTP ${status}`);
    this.status = status;
  }
}

export async function call(service, path, { method = "GET", body, accept = "application/json", servicePath } = {}) {
  const h = headers({ Accept: accept });
  if (servicePath) h["Fiware-ServicePath"] = servicePath;
  if (servicePath === null) delete h["Fiware-ServicePath"]; // every path of the tenant
  // the agent's provisioning takes one path: "/farm/#" provisions in "/farm"
  if (service === "agent" && (h["Fiware-ServicePath"] || "").endsWith("#")) {
    h["Fiware-ServicePath"] = h["Fiware-ServicePath"].slice(0, -1).replace(/(.)\/$/, "$1") || "/";
  }
  if (body !== undefined) h["Content-Type"] = "application/json";
  const response = await fetch(`/api/${service}${path}`, { method, headers: h,
    body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  if (text && (response.headers.get("content-type") || "").includes("json")) data = JSON.parse(text);
  else data = text;
  if (response.status === 401 && state.signIn) signInAgain();
  if (!response.ok) throw new ApiError(response.status, data);
  return { data, total: Number(response.headers.get("fiware-total-count") || NaN), response };
}

// Every entity matching params, page after page (the broker answers at most 1000 a page).
export async function allEntities(params) {
  const out = [];
  for (let offset = 0; ; offset += 1000) {
    const q = new URLSearchParams({ ...params, limit: "1000", offset: String(offset), options: "count" });
    const { data, total } = await call("broker", `/v2/entities?${q}`);
    out.push(...data);
    if (data.length < 1000 || out.length >= total) return out;
  }
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}
