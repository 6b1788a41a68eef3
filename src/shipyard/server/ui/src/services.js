// Inference services (KServe-shaped): the list, and a page with the traffic split per
// revision, replicas, and a "try it" form that sends a V2 (Open Inference Protocol) request.

import { get, kindFor, list, remove, watch } from "./api.js";
import { add, errorBox, fill, h, kv, pill, table, throttle } from "./dom.js";
import { renderList } from "./list.js";

const COLORS = ["#2458d6", "#1f9d55", "#c9822b", "#7a5cc9", "#d63c3c"];
const OWNER_SELECTOR = (name) => `shipyard.dev/kind=InferenceService,shipyard.dev/owner=${name}`;
const REV_LABEL = "serving.kserve.io/revision";

export function servicesList(root, { ns }) {
  root.append(h("h1", {}, "Inference services"));
  const box = h("div");
  root.append(box);
  return renderList(box, { plural: "inferenceservices", ns, link: (n, s) => `#/${s}/services/${encodeURIComponent(n)}` });
}

function ready(obj) {
  const c = ((obj.status || {}).conditions || []).find((x) => x.type === "Ready");
  return c ? (c.status === "True" ? "Ready" : "NotReady") : "Pending";
}

function gatewayBase(ns, name) {
  return `/serving/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
}

async function templateRequest(ns, name) {
  // The model's V2 metadata names its inputs; without it, a skeleton to fill in.
  try {
    const resp = await fetch(`${gatewayBase(ns, name)}/v2/models/${encodeURIComponent(name)}`);
    if (resp.ok) {
      const meta = await resp.json();
      const inputs = (meta.inputs || []).map((i) => ({ name: i.name, shape: i.shape, datatype: i.datatype, data: [] }));
      if (inputs.length) return { inputs };
    }
  } catch {
    /* fall through */
  }
  return { inputs: [{ name: "input-0", shape: [1, 1], datatype: "FP64", data: [[0]] }] };
}

export async function servicePage(root, { ns, name }) {
  const k = await kindFor("inferenceservices");
  const pk = await kindFor("pods", "");
  const head = h("span");
  const body = h("div");
  const input = h("textarea", { rows: "8", id: "infer-input", "aria-label": "V2 request body", spellcheck: "false" });
  const output = h("div", { id: "infer-output" });
  const send = h("button", { class: "primary", id: "infer-send", onclick: infer }, "Send request");
  add(root,
    h("h1", {}, h("a", { href: `#/${ns}/services` }, "Inference services"), " / ", name, " ", head),
    h("div", { class: "toolbar" },
      h("button", { class: "danger", onclick: async () => {
        if (!window.confirm(`Delete inference service ${name}?`)) return;
        try { await remove("inferenceservices", ns, name); location.hash = `#/${ns}/services`; } catch (err) { body.prepend(errorBox(err)); }
      } }, "Delete"),
      h("a", { href: `#/${ns}/r/serving.kserve.io/v1beta1/inferenceservices/${encodeURIComponent(name)}` }, "YAML")),
    body,
    h("div", { class: "card", id: "try-it" },
      h("h2", {}, "Try it (V2 inference request)"),
      h("p", { class: "muted" }, "POST ", h("code", {}, `${gatewayBase(ns, name)}/v2/models/${name}/infer`)),
      input, h("div", { class: "toolbar" }, send), output),
  );

  async function infer() {
    send.disabled = true;
    output.replaceChildren(h("p", { class: "muted" }, "sending…"));
    try {
      JSON.parse(input.value);
    } catch (err) {
      output.replaceChildren(errorBox(`the request is not valid JSON: ${err.message}`));
      send.disabled = false;
      return;
    }
    try {
      const t0 = performance.now();
      const resp = await fetch(`${gatewayBase(ns, name)}/v2/models/${encodeURIComponent(name)}/infer`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: input.value,
      });
      const ms = performance.now() - t0;
      const text = await resp.text();
      let data = null;
      try { data = JSON.parse(text); } catch { /* not JSON */ }
      const outs = (data && data.outputs) || [];
      fill(output,
        h("p", {}, pill(resp.ok ? "Succeeded" : "Failed"), ` HTTP ${resp.status} in ${ms.toFixed(0)} ms`),
        outs.length
          ? table(["output", "datatype", "shape", "data"], outs.map((o) => h("tr", {}, h("td", {}, o.name), h("td", {}, o.datatype), h("td", {}, JSON.stringify(o.shape)), h("td", { class: "prediction" }, JSON.stringify(o.data)))), { class: "outputs" })
          : null,
        h("pre", { class: "yaml" }, data ? JSON.stringify(data, null, 2) : text),
      );
    } catch (err) {
      output.replaceChildren(errorBox(err));
    } finally {
      send.disabled = false;
    }
  }

  async function load() {
    const svc = await get("inferenceservices", ns, name);
    const pods = await list("pods", ns, { labelSelector: OWNER_SELECTOR(name), limit: "500" }, "");
    draw(svc, pods.items);
    return svc;
  }

  function draw(svc, pods) {
    const st = svc.status || {};
    const pred = ((st.components || {}).predictor) || {};
    const revs = st.revisions || {};
    const traffic = pred.traffic || [];
    head.replaceChildren(pill(ready(svc)));
    const byRev = {};
    for (const p of pods) {
      const rev = (p.metadata.labels || {})[REV_LABEL] || "";
      (byRev[rev] ||= []).push(p);
    }
    const split = h("div", { class: "bar", id: "traffic-bar" },
      traffic.filter((t) => t.percent > 0).map((t, i) => h("span", { style: `width:${t.percent}%;background:${COLORS[i % COLORS.length]}`, title: `${t.revisionName}: ${t.percent}%` }, `${t.revisionName} ${t.percent}%`)));
    const revNames = [...new Set([...traffic.map((t) => t.revisionName), ...Object.keys(revs)])];
    fill(body,
      h("div", { class: "card" }, kv([
        ["URL", st.url || ""],
        ["model", (((svc.spec.predictor || {}).model || {}).modelFormat || {}).name || ""],
        ["storage", ((svc.spec.predictor || {}).model || {}).storageUri || ""],
        ["replicas", `min ${svc.spec.predictor.minReplicas ?? 1}, max ${svc.spec.predictor.maxReplicas ?? "-"}`],
        pred.latestReadyRevision && ["latest ready", pred.latestReadyRevision],
      ])),
      h("h2", {}, "Traffic"),
      split,
      table(["revision", "traffic", "ready", "desired replicas", "replicas (running/total)", "model path"],
        revNames.map((r) => {
          const t = traffic.find((x) => x.revisionName === r);
          const info = revs[r] || {};
          const ps = byRev[r] || [];
          const running = ps.filter((p) => (p.status || {}).phase === "Running").length;
          return h("tr", { "data-revision": r },
            h("td", {}, r, t && t.latestRevision ? h("span", { class: "muted" }, " (latest)") : null),
            h("td", {}, t ? `${t.percent}%` : "0%"),
            h("td", {}, pill(info.ready ? "Ready" : "Pending")),
            h("td", {}, String(info.desiredReplicas ?? "")),
            h("td", { class: "replicas" }, `${running}/${ps.length}`),
            h("td", {}, ((info.server || {}).path) || ""));
        }), { class: "revisions" }),
      h("h2", {}, "Replicas"),
      table(["pod", "revision", "phase"], pods.map((p) => h("tr", {},
        h("td", {}, h("a", { href: `#/${ns}/r/core/v1/pods/${encodeURIComponent(p.metadata.name)}` }, p.metadata.name)),
        h("td", {}, (p.metadata.labels || {})[REV_LABEL] || ""),
        h("td", {}, pill((p.status || {}).phase)))), { class: "pods" }),
    );
  }

  try {
    const svc = await load();
    input.value = JSON.stringify(await templateRequest(ns, name), null, 2);
    const refresh = throttle(() => load().catch((err) => body.prepend(errorBox(err))), 1000);
    const stops = [
      watch(k, ns, { fieldSelector: `metadata.name=${name}`, resourceVersion: svc.metadata.resourceVersion }, refresh),
      watch(pk, ns, { labelSelector: OWNER_SELECTOR(name), resourceVersion: svc.metadata.resourceVersion }, refresh),
    ];
    return () => stops.forEach((s) => s());
  } catch (err) {
    body.replaceChildren(errorBox(err));
    return null;
  }
}
