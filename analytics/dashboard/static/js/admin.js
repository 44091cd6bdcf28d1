// IoT devices and groups (the agent's provisioning API), subscriptions (the broker), rules (the rules service).
import { call, el, state } from "./api.js";

function attributes(text) {
  return (text || "").split(",").map((s) => s.trim()).filter(Boolean).map((item) => {
    const [object_id, name, type] = item.split(":");
    return { object_id, name: name || object_id, type: type || "Number" };
  });
}

function say(node, text) { node.textContent = text; }

// A button's action: its failure is said in the section's message, never left uncaught.
function act(message, fn) {
  return async () => {
    try { await fn(); } catch (error) { say(message, error.message); }
  };
}

export async function devices(root) {
  const message = root.querySelector("#device-message");
  if (!state.tenant) { say(message, "The IoT agent needs a service: choose one above."); return; }
  const tbody = root.querySelector("#device-table tbody");
  const groups = root.querySelector("#group-table tbody");
  try {
    const { data } = await call("agent", "/iot/devices?limit=1000");
    tbody.replaceChildren(...(data.devices || []).map((d) => el("tr", { "data-id": d.device_id },
      el("td", { text: d.device_id }), el("td", { text: d.entity_name || "" }), el("td", { text: d.entity_type || "" }),
      el("td", { text: d.transport || "" }),
      el("td", {},
        el("button", { type: "button", text: "Edit", "aria-label": `Edit ${d.device_id}`, onclick: () => edit(root, d) }),
        " ",
        el("button", { type: "button", text: "Delete", "aria-label": `Delete ${d.device_id}`, onclick: act(message, async () => {
          if (!confirm(`Delete device ${d.device_id}?`)) return;
          await call("agent", `/iot/devices/${encodeURIComponent(d.device_id)}`, { method: "DELETE" });
          say(message, `Device ${d.device_id} deleted`);
          devices(root);
        }) })))));
    const g = await call("agent", "/iot/groups?limit=1000");
    groups.replaceChildren(...(g.data.groups || []).map((grp) => el("tr", {},
      el("td", { text: grp.apikey }), el("td", { text: grp.resource }), el("td", { text: grp.entity_type || "" }),
      el("td", {}, el("button", { type: "button", text: "Delete", "aria-label": `Delete group ${grp.apikey}`, onclick: act(message, async () => {
        if (!confirm(`Delete group ${grp.apikey}?`)) return;
        const q = new URLSearchParams({ resource: grp.resource, apikey: grp.apikey });
        await call("agent", `/iot/groups?${q}`, { method: "DELETE" });
        say(message, `Group ${grp.apikey} deleted`);
        devices(root);
      }) })))));
  } catch (error) {
    say(message, `The IoT agent: ${error.message}`);
  }
}

function edit(root, device) {
  const form = root.querySelector("#device-edit");
  root.querySelector("#device-edit-section").hidden = false;
  form.elements.device_id.value = device.device_id;
  const { entity_name, entity_type, attributes: attrs, lazy, commands, static_attributes } = device;
  form.elements.body.value = JSON.stringify({ entity_name, entity_type, attributes: attrs, lazy, commands,
    static_attributes }, null, 1);
  form.elements.body.focus();
}

export function wireDevices(root) {
  const message = root.querySelector("#device-message");
  root.querySelector("#device-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = event.target.elements;
    const device = { device_id: f.device_id.value.trim(), entity_type: f.entity_type.value.trim(),
      transport: f.transport.value, attributes: attributes(f.attributes.value) };
    if (f.entity_name.value.trim()) device.entity_name = f.entity_name.value.trim();
    if (f.apikey.value.trim()) device.apikey = f.apikey.value.trim();
    try {
      await call("agent", "/iot/devices", { method: "POST", body: { devices: [device] } });
      say(message, `Device ${device.device_id} provisioned`);
      event.target.reset();
      devices(root);
    } catch (error) { say(message, `Not provisioned: ${error.message}`); }
  });
  root.querySelector("#device-edit").addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = event.target.elements;
    try {
      const body = JSON.parse(f.body.value);
      for (const k of Object.keys(body)) if (body[k] === undefined || body[k] === null) delete body[k];
      await call("agent", `/iot/devices/${encodeURIComponent(f.device_id.value)}`, { method: "PUT", body });
      say(message, `Device ${f.device_id.value} saved`);
      root.querySelector("#device-edit-section").hidden = true;
      devices(root);
    } catch (error) { say(message, `Not saved: ${error.message}`); }
  });
  root.querySelector("#group-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = event.target.elements;
    const group = { apikey: f.apikey.value.trim(), resource: f.resource.value.trim(),
      entity_type: f.entity_type.value.trim(), attributes: attributes(f.attributes.value) };
    try {
      await call("agent", "/iot/groups", { method: "POST", body: { groups: [group] } });
      say(message, `Group ${group.apikey} created`);
      devices(root);
    } catch (error) { say(message, `Not created: ${error.message}`); }
  });
}

export async function subscriptions(root) {
  const tbody = root.querySelector("#sub-table tbody");
  try {
    // a subscription belongs to one path ("/#" included): "/" and ".../#" list every path's
    const path = state.servicePath || "/";
    const { data } = await call("broker", "/v2/subscriptions?limit=1000",
      { servicePath: path === "/" || path.endsWith("#") ? null : path });
    tbody.replaceChildren(...data.map((s) => {
      const n = s.notification || {};
      return el("tr", {}, el("td", { text: s.id }), el("td", { text: s.description || "" }),
        el("td", { text: s.status || "" }), el("td", { text: String(n.timesSent ?? 0) }),
        el("td", { text: String(n.failsCounter ?? 0) }), el("td", { text: n.lastSuccess || "" }),
        el("td", { text: n.lastFailure ? `${n.lastFailure} ${n.lastFailureReason || ""}` : "" }));
    }));
  } catch (error) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: "7", text: error.message })));
  }
}

const RULE_EXAMPLE = { name: "too-hot", description: "temperature above 30",
  condition: { type: "Room", q: "temperature>30" },
  action: { type: "update", parameters: { attributes: [{ name: "alarm", type: "Text", value: "hot" }] } } };

export async function rules(root) {
  const tbody = root.querySelector("#rule-table tbody");
  const message = root.querySelector("#rule-message");
  const form = root.querySelector("#rule-form");
  if (!form.elements.body.value) form.elements.body.value = JSON.stringify(RULE_EXAMPLE, null, 1);
  try {
    const { data } = await call("rules", "/rules?limit=1000");
    tbody.replaceChildren(...(data.data || []).map((r) => el("tr", { "data-name": r.name, "data-enabled": String(!!r.enabled) },
      el("td", { text: r.name }), el("td", { text: r.enabled ? "yes" : "no" }), el("td", { text: r.subscriptionId || "" }),
      el("td", {}, el("button", { type: "button", text: r.enabled ? "Disable" : "Enable",
        "aria-label": `${r.enabled ? "Disable" : "Enable"} ${r.name}`, onclick: act(message, async () => {
          await call("rules", `/rules/${encodeURIComponent(r.name)}/${r.enabled ? "disable" : "enable"}`, { method: "POST" });
          rules(root);
        }) }), " ",
        el("button", { type: "button", text: "Delete", "aria-label": `Delete ${r.name}`, onclick: act(message, async () => {
          if (!confirm(`Delete rule ${r.name}?`)) return;
          await call("rules", `/rules/${encodeURIComponent(r.name)}`, { method: "DELETE" });
          rules(root);
        }) })))));
  } catch (error) { say(message, `The rules service: ${error.message}`); }
}

export function wireRules(root) {
  const message = root.querySelector("#rule-message");
  root.querySelector("#rule-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const body = JSON.parse(event.target.elements.body.value);
      await call("rules", "/rules", { method: "POST", body });
      say(message, `Rule ${body.name} created`);
      rules(root);
    } catch (error) { say(message, `Not created: ${error.message}`); }
  });
}
