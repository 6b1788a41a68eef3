// The REST API, discovery, watches (server-sent events) and followed logs.

export class ApiError extends Error {}

export async function api(path, { method = "GET", body, contentType } = {}) {
  const headers = { accept: "application/json" };
  let payload = body;
  if (body !== undefined && typeof body !== "string") payload = JSON.stringify(body);
  if (body !== undefined) headers["content-type"] = contentType || "application/json";
  const resp = await fetch(path, { method, headers, body: payload });
  const text = await resp.text();
  let data = text;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: keep the text */
  }
  if (!resp.ok) {
    const msg = (data && data.error && data.error.message) || `${resp.status} ${resp.statusText}`;
    throw new ApiError(msg);
  }
  return data;
}

let discovery = null;

/** Every kind the server serves: [{group, version, kind, name (plural), namespaced, aliases}]. */
export async function kinds() {
  if (!discovery) discovery = api("/apis").then((d) => d.resources);
  return discovery;
}

export async function kindFor(plural, group) {
  const all = await kinds();
  const found = all.find((k) => k.name === plural && (group === undefined || k.group === group));
  if (!found) throw new ApiError(`this server serves no ${plural}`);
  return found;
}

/** The kind an object's apiVersion + kind names (aliases such as kubeflow.org/v1beta1 too). */
export async function kindOf(obj) {
  const [group, version] = (obj.apiVersion || "").includes("/")
    ? obj.apiVersion.split("/")
    : ["", obj.apiVersion];
  const all = await kinds();
  return all.find(
    (k) =>
      k.kind === obj.kind &&
      ((k.group === group && k.version === version) ||
        k.aliases.some((a) => a.group === group && a.version === version)),
  );
}

export function collectionPath(k, ns) {
  const base = k.group ? `/apis/${k.group}/${k.version}` : `/api/${k.version}`;
  return k.namespaced && ns ? `${base}/namespaces/${encodeURIComponent(ns)}/${k.name}` : `${base}/${k.name}`;
}

export function objectPath(k, ns, name) {
  return `${collectionPath(k, ns)}/${encodeURIComponent(name)}`;
}

export async function list(plural, ns, params = {}, group) {
  const k = await kindFor(plural, group);
  const q = new URLSearchParams(params);
  return api(`${collectionPath(k, ns)}?${q}`);
}

export async function get(plural, ns, name, group) {
  const k = await kindFor(plural, group);
  return api(objectPath(k, ns, name));
}

export async function patch(plural, ns, name, body, group) {
  const k = await kindFor(plural, group);
  return api(objectPath(k, ns, name), { method: "PATCH", body, contentType: "application/merge-patch+json" });
}

export async function remove(plural, ns, name, group) {
  const k = await kindFor(plural, group);
  return api(objectPath(k, ns, name), { method: "DELETE" });
}

/** Create or update (server-side apply), as `shipyard apply` does. */
export async function applyObject(obj, fallbackNs) {
  const k = await kindOf(obj);
  if (!k) throw new ApiError(`unknown kind ${obj.apiVersion}/${obj.kind}`);
  const name = obj.metadata && obj.metadata.name;
  if (!name) throw new ApiError(`${obj.kind}: metadata.name is required`);
  const ns = k.namespaced ? (obj.metadata.namespace || fallbackNs) : null;
  const resp = await fetch(objectPath(k, ns, name), {
    method: "PATCH",
    headers: { "content-type": "application/apply-patch+json", accept: "application/json" },
    body: JSON.stringify(obj),
  });
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError((data && data.error && data.error.message) || resp.statusText);
  return { obj: data, action: resp.headers.get("X-Shipyard-Action") || (resp.status === 201 ? "created" : "configured"), kind: k };
}

/**
 * Watch a collection from `resourceVersion` (no initial dump when given). `onEvent` gets
 * {type, object}. Returns a function that stops the watch.
 */
export function watch(k, ns, params, onEvent) {
  const q = new URLSearchParams({ ...params, watch: "true" });
  const src = new EventSource(`${collectionPath(k, ns)}?${q}`);
  src.onmessage = (m) => {
    try {
      onEvent(JSON.parse(m.data));
    } catch (err) {
      console.error(err);
    }
  };
  return () => src.close();
}

/** Stream a Pod's log into `onChunk(text)`; returns an abort function. */
export function streamLogs(ns, pod, { follow = false, container } = {}, onChunk, onEnd) {
  const ctl = new AbortController();
  const q = new URLSearchParams();
  if (follow) q.set("follow", "true");
  if (container) q.set("container", container);
  (async () => {
    try {
      const resp = await fetch(`/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(pod)}/log?${q}`, { signal: ctl.signal });
      if (!resp.ok) {
        const data = await resp.json().catch(() => null);
        onChunk(`(${(data && data.error && data.error.message) || resp.statusText})\n`);
        return;
      }
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        onChunk(dec.decode(value, { stream: true }));
      }
    } catch (err) {
      if (err.name !== "AbortError") onChunk(`(log stream ended: ${err.message})\n`);
    } finally {
      if (onEnd) onEnd();
    }
  })();
  return () => ctl.abort();
}

export function condition(obj, type) {
  return ((obj.status || {}).conditions || []).find((c) => c.type === type);
}

export function isTrue(obj, type) {
  const c = condition(obj, type);
  return !!c && c.status === "True";
}
