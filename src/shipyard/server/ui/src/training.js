// Training jobs (TrainJob, PyTorchJob, TFJob, XGBoostJob): lists, replica states and logs.

import { get, kindFor, kinds, list, remove, streamLogs, watch } from "./api.js";
import { add, errorBox, fill, h, kv, pill, table, throttle } from "./dom.js";
import { renderList } from "./list.js";
import { conditionState } from "./experiments.js";

const JOB_KINDS = [
  ["shipyard.dev", "trainjobs"],
  ["kubeflow.org", "pytorchjobs"],
  ["kubeflow.org", "tfjobs"],
  ["kubeflow.org", "xgboostjobs"],
  ["trainer.kubeflow.org", "trainjobs"],
];

export async function trainingList(root, { ns, query }) {
  const all = await kinds();
  const served = JOB_KINDS.filter(([g, p]) => all.some((k) => k.group === g && k.name === p));
  const [group, plural] = served.find(([g, p]) => `${g}/${p}` === query.get("kind")) || served[0];
  add(root,
    h("h1", {}, "Training jobs"),
    h("div", { class: "toolbar" }, served.map(([g, p]) => {
      const k = all.find((x) => x.group === g && x.name === p);
      const active = g === group && p === plural;
      return h("a", { href: `#/${ns}/training?kind=${g}/${p}`, class: active ? "active" : "", style: active ? "font-weight:600" : "" }, `${k.kind} (${g})`);
    })),
  );
  const box = h("div");
  root.append(box);
  return renderList(box, { plural, group, ns, link: (n, s) => `#/${s}/training/${group}/${plural}/${encodeURIComponent(n)}` });
}

export async function trainingPage(root, { ns, group, plural, name }) {
  const k = await kindFor(plural, group);
  const pk = await kindFor("pods", "");
  const head = h("span");
  const body = h("div");
  const logs = h("pre", { class: "logs", id: "replica-logs" }, "Click a replica to see its log.");
  add(root,
    h("h1", {}, h("a", { href: `#/${ns}/training?kind=${group}/${plural}` }, "Training jobs"), " / ", name, " ", head),
    h("div", { class: "toolbar" },
      h("button", { class: "danger", onclick: async () => {
        if (!window.confirm(`Delete ${k.kind} ${name}?`)) return;
        try { await remove(plural, ns, name, group); location.hash = `#/${ns}/training`; } catch (err) { body.prepend(errorBox(err)); }
      } }, "Delete"),
      h("a", { href: `#/${ns}/r/${group}/${k.version}/${plural}/${encodeURIComponent(name)}` }, "YAML")),
    body, h("h2", {}, "Logs"), logs,
  );
  let stopLogs = null;
  function showLogs(pod) {
    if (stopLogs) stopLogs();
    logs.textContent = "";
    const running = ["Running", "Pending"].includes((pod.status || {}).phase);
    stopLogs = streamLogs(ns, pod.metadata.name, { follow: running }, (c) => { logs.textContent += c; });
  }
  async function load() {
    const job = await get(plural, ns, name, group);
    const pods = (await list("pods", ns, { labelSelector: `training.kubeflow.org/job-name=${name}`, limit: "500" }, "")).items;
    const st = job.status || {};
    head.replaceChildren(pill(conditionState(job)));
    const reps = st.replicaStatuses || {};
    fill(body,
      h("div", { class: "card" }, kv([
        ["state", conditionState(job)],
        st.startTime && ["started", st.startTime],
        st.completionTime && ["completed", st.completionTime],
        ((st.conditions || []).slice(-1)[0] || {}).message && ["message", st.conditions.slice(-1)[0].message],
      ])),
      h("h2", {}, "Replica states"),
      table(["replica type", "active", "succeeded", "failed"], Object.entries(reps).map(([t, c]) =>
        h("tr", { "data-replica-type": t }, h("td", {}, t), h("td", {}, String(c.active || 0)), h("td", {}, String(c.succeeded || 0)), h("td", {}, String(c.failed || 0)))), { class: "replica-states" }),
      h("h2", {}, "Replicas"),
      table(["pod", "type", "index", "phase", "restarts", ""], pods.map((p) => {
        const l = p.metadata.labels || {};
        const restarts = ((p.status || {}).containerStatuses || []).reduce((a, c) => a + (c.restartCount || 0), 0);
        return h("tr", { "data-pod": p.metadata.name },
          h("td", {}, p.metadata.name), h("td", {}, l["training.kubeflow.org/replica-type"] || ""),
          h("td", {}, l["training.kubeflow.org/replica-index"] || ""), h("td", {}, pill((p.status || {}).phase)),
          h("td", {}, String(restarts)), h("td", {}, h("button", { onclick: () => showLogs(p) }, "logs")));
      }), { class: "pods" }),
    );
    return job;
  }
  try {
    const job = await load();
    const refresh = throttle(() => load().catch((err) => body.prepend(errorBox(err))), 1000);
    const rv = job.metadata.resourceVersion;
    const stops = [
      watch(k, ns, { fieldSelector: `metadata.name=${name}`, resourceVersion: rv }, refresh),
      watch(pk, ns, { labelSelector: `training.kubeflow.org/job-name=${name}`, resourceVersion: rv }, refresh),
    ];
    return () => { stops.forEach((s) => s()); if (stopLogs) stopLogs(); };
  } catch (err) {
    body.replaceChildren(errorBox(err));
    return () => stopLogs && stopLogs();
  }
}
