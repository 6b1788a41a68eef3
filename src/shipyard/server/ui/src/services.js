// Inference services (KServe-shaped): the list, and a page with the traffic split per
// revision, replicas, request rate and latency (polled from the gateway's _stats endpoint,
// with a chart of the last five minutes), and a "try it" form that sends a V2 (Open
// Inference Protocol) request.

import { api, get, kindFor, list, remove, watch } from "./api.js";
import { chart, disposeAll } from "./charts.js";
import { add, errorBox, fill, h, kv, pill, table, throttle } from "./dom.js";
import { renderList } from "./list.js";

const COLORS = ["#2458d6", "#1f9d55", "#c9822b", "#7a5cc9", "#d63c3c"];
const OWNER_SELECTOR = (name) => `shipyard.dev/kind=InferenceService,shipyard.dev/owner=${name}`;
const REV_LABEL = "serving.kserve.io/revision";
const STATS_EVERY_MS = 3000;
const STATS_WINDOW = 60; // seconds

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

/** A rate or a latency for people: a few significant digits, never "0.00" for non-zero. */
function fmtStat(v) {
  const n = Number(v) || 0;
  if (n === 0) return "0";
  return n >= 100 ? n.toFixed(0) : n.toPrecision(n >= 1 ? 3 : 2);
}

function stat(id, label, unit) {
  return h("div", { class: "stat" }, h("div", { class: "muted" }, label),
    h("span", { class: "value", id }, "–"), unit ? h("span", { class: "muted" }, ` ${unit}`) : null);
}

/** The request-rate/latency panel: numbers, a per-revision table and a chart; `update(stats)`
 * redraws it from the gateway's _stats answer. */
function requestsPanel() {
  const el = h("div", { class: "chart", id: "requests-chart" });
  const revs = h("div");
  const card = h("div", { class: "card", id: "requests" },
    h("h2", {}, `Requests (last ${STATS_WINDOW} s)`),
    h("div", { class: "stats" },
      stat("req-rate", "request rate", "req/s"), stat("req-p50", "latency p50", "ms"),
      stat("req-p95", "latency p95", "ms"), stat("req-count", "requests"), stat("req-errors", "errors (5xx)")),
    revs, el);
  function update(s) {
    const r = s.requests;
    for (const [id, v] of [["req-rate", r.rate], ["req-p50", r.latencyMs.p50], ["req-p95", r.latencyMs.p95]]) {
      card.querySelector(`#${id}`).textContent = fmtStat(v);
    }
    card.querySelector("#req-count").textContent = String(r.count);
    card.querySelector("#req-errors").textContent = String(r.errors);
    fill(revs, table(["revision", "traffic", "ready replicas", "req/s", "p50 ms", "p95 ms", "requests"],
      s.revisions.map((v) => h("tr", { "data-revision": v.revision },
        h("td", {}, v.revision), h("td", {}, `${v.percent}%`), h("td", {}, String(v.replicas)),
        h("td", { class: "rate" }, fmtStat(v.rate)), h("td", {}, fmtStat(v.latencyMs.p50)),
        h("td", {}, fmtStat(v.latencyMs.p95)), h("td", { class: "count" }, String(v.count)))),
    { class: "revision-stats" }));
    const pts = s.series.points;
    const at = (f) => pts.map((p) => [p.t * 1000, f(p)]);
    chart(el, {
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { data: ["req/s", "p50 ms", "p95 ms"], top: 0, left: "center" },
      grid: { left: 55, right: 60, top: 36, bottom: 30 },
      xAxis: { type: "time" },
      yAxis: [
        { type: "value", name: "req/s", minInterval: 0.1 },
        { type: "value", name: "ms", splitLine: { show: false } },
      ],
      series: [
        { name: "req/s", type: "line", data: at((p) => p.rate), symbol: "none", areaStyle: { opacity: 0.15 } },
        { name: "p50 ms", type: "line", yAxisIndex: 1, data: at((p) => p.p50Ms || null), symbolSize: 5, connectNulls: false },
        { name: "p95 ms", type: "line", yAxisIndex: 1, data: at((p) => p.p95Ms || null), symbolSize: 5, connectNulls: false, lineStyle: { type: "dashed" } },
      ],
    });
  }
  return { card, update };
}

export async function servicePage(root, { ns, name }) {
  const k = await kindFor("inferenceservices");
  const pk = await kindFor("pods", "");
  const head = h("span");
  const body = h("div");
  const input = h("textarea", { rows: "8", id: "infer-input", "aria-label": "V2 request body", spellcheck: "false" });
  const output = h("div", { id: "infer-output" });
  const send = h("button", { class: "primary", id: "infer-send", onclick: infer }, "Send request");
  const requests = requestsPanel();
  add(root,
    h("h1", {}, h("a", { href: `#/${ns}/services` }, "Inference services"), " / ", name, " ", head),
    h("div", { class: "toolbar" },
      h("button", { class: "danger", onclick: async () => {
        if (!window.confirm(`Delete inference service ${name}?`)) return;
        try { await remove("inferenceservices", ns, name); location.hash = `#/${ns}/services`; } catch (err) { body.prepend(errorBox(err)); }
      } }, "Delete"),
      h("a", { href: `#/${ns}/r/serving.kserve.io/v1beta1/inferenceservices/${encodeURIComponent(name)}` }, "YAML")),
    body,
    requests.card,
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
      pollStats();
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

  let statsError = null;
  let live = true;
  async function pollStats() {
    try {
      const stats = await api(`${gatewayBase(ns, name)}/_stats?window=${STATS_WINDOW}`);
      if (!live) return; // the page was left while the request was out
      requests.update(stats);
      if (statsError) statsError.remove();
      statsError = null;
    } catch (err) {
      if (!statsError) requests.card.prepend((statsError = errorBox(err)));
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
    pollStats();
    const timer = setInterval(pollStats, STATS_EVERY_MS);
    const stops = [
      watch(k, ns, { fieldSelector: `metadata.name=${name}`, resourceVersion: svc.metadata.resourceVersion }, refresh),
      watch(pk, ns, { labelSelector: OWNER_SELECTOR(name), resourceVersion: svc.metadata.resourceVersion }, refresh),
      () => { live = false; clearInterval(timer); },
      () => disposeAll(root),
    ];
    return () => stops.forEach((s) => s());
  } catch (err) {
    body.replaceChildren(errorBox(err));
    return null;
  }
}
