// The live feed: server-sent events of the dashboard (/api/events), fed by a broker subscription.
import { state } from "./api.js";

let source = null;

export function connect(onEntity, onStatus, onReload) {
  if (source) source.close();
  const q = new URLSearchParams({ service: state.tenant, servicepath: state.servicePath || "/" });
  if (state.token) q.set("token", state.token);
  source = new EventSource(`/api/events?${q}`);
  onStatus("connecting");
  source.addEventListener("ready", () => onStatus("live"));
  source.addEventListener("unavailable", () => onStatus("no live feed"));
  source.addEventListener("overflow", () => onReload());
  source.addEventListener("entity", (event) => {
    const { servicePath, entity } = JSON.parse(event.data);
    onEntity(entity, servicePath);
  });
  source.onerror = () => onStatus("reconnecting");
}
