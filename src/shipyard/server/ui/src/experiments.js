// Experiments (Katib-shaped): the list, and a page with the trials, the best trial, the
// objective per trial with the best-so-far line, and a parallel-coordinates plot.

import { get, kindFor, list, remove, watch } from "./api.js";
import { disposeAll, objectiveChart, parallelChart } from "./charts.js";
import { add, errorBox, fill, fmtNum, h, kv, pill, table, throttle } from "./dom.js";
import { renderList } from "./list.js";

const TRIAL_STATES = ["Succeeded", "Failed", "Killed", "MetricsUnavailable", "EarlyStopped", "Running"];

export function conditionState(obj) {
  const conds = (obj.status || {}).conditions || [];
  for (const t of TRIAL_STATES) if (conds.some((c) => c.type === t && c.status === "True")) return t;
  return conds.length ? "Created" : "Pending";
}

function objectiveOf(trial, metric) {
  const m = (((trial.status || {}).observation || {}).metrics || []).find((x) => x.name === metric);
  return m ? Number(m.latest) : null;
}

function params(obj) {
  return Object.fromEntries((obj.spec ? obj.spec.parameterAssignments : obj.parameterAssignments || []).map((a) => [a.name, a.value]));
}

export function experimentsList(root, { ns }) {
  root.append(h("h1", {}, "Experiments"));
  const box = h("div");
  root.append(box);
  return renderList(box, { plural: "experiments", group: "shipyard.dev", ns, link: (n, s) => `#/${s}/experiments/${encodeURIComponent(n)}` });
}

export async function experimentPage(root, { ns, name }) {
  const ek = await kindFor("experiments", "shipyard.dev");
  const tk = await kindFor("trials", "shipyard.dev");
  const head = h("span");
  const body = h("div");
  const objEl = h("div", { class: "chart", id: "objective-chart" });
  const parEl = h("div", { class: "chart", id: "parallel-chart" });
  add(root,
    h("h1", {}, h("a", { href: `#/${ns}/experiments` }, "Experiments"), " / ", name, " ", head),
    h(
      "div",
      { class: "toolbar" },
      h("button", { class: "danger", onclick: async () => {
        if (!window.confirm(`Delete experiment ${name} and its trials?`)) return;
        try { await remove("experiments", ns, name, "shipyard.dev"); location.hash = `#/${ns}/experiments`; } catch (err) { body.prepend(errorBox(err)); }
      } }, "Delete"),
      h("a", { href: `#/${ns}/r/shipyard.dev/v1/experiments/${encodeURIComponent(name)}` }, "YAML"),
    ),
    body,
    h("div", { class: "row" }, h("div", { class: "card" }, h("h2", {}, "Objective per trial"), objEl), h("div", { class: "card" }, h("h2", {}, "Parameters vs objective"), parEl)),
  );

  let rv = "0";
  async function load() {
    const exp = await get("experiments", ns, name, "shipyard.dev");
    const trialList = await list("trials", ns, { labelSelector: `experiment=${name}`, limit: "1000" }, "shipyard.dev");
    rv = trialList.metadata.resourceVersion;
    draw(exp, trialList.items);
    return exp;
  }

  function draw(exp, trials) {
    const obj = exp.spec.objective || {};
    const metric = obj.objectiveMetricName;
    const goal = obj.type || "minimize";
    const st = exp.status || {};
    head.replaceChildren(pill(conditionState(exp)));
    trials.sort((a, b) => (a.metadata.creationTimestamp < b.metadata.creationTimestamp ? -1 : 1));
    const names = exp.spec.parameters.map((p) => p.name);
    const best = st.currentOptimalTrial || {};
    const bestName = best.bestTrialName;
    const bestValue = ((best.observation || {}).metrics || []).find((m) => m.name === metric);
    const reason = ((st.conditions || []).slice(-1)[0] || {}).message;
    fill(body,
      h("div", { class: "row" },
        h("div", { class: "card" }, kv([
          ["objective", `${goal} ${metric}`],
          ["algorithm", (exp.spec.algorithm || {}).algorithmName],
          ["trials", `${st.trials || 0} (succeeded ${st.trialsSucceeded || 0}, failed ${st.trialsFailed || 0}, running ${st.trialsRunning || 0})`],
          ["max trials", String(exp.spec.maxTrialCount ?? "")],
          reason && ["status", reason],
        ])),
        h("div", { class: "card", id: "best-trial" },
          h("h2", {}, "Best trial"),
          bestName
            ? kv([
                ["trial", bestName],
                [metric, bestValue ? fmtNum(bestValue.latest) : ""],
                ...Object.entries(params(best)).map(([k, v]) => [k, fmtNum(v)]),
              ])
            : h("p", { class: "muted" }, "No trial has reported the objective yet.")),
      ),
      h("h2", {}, "Trials"),
      table(
        ["#", "trial", "state", ...names, metric],
        trials.map((t, i) => {
          const p = params(t);
          const v = objectiveOf(t, metric);
          return h("tr", { class: t.metadata.name === bestName ? "best" : "", "data-trial": t.metadata.name },
            h("td", {}, String(i + 1)),
            h("td", {}, h("a", { href: `#/${ns}/r/shipyard.dev/v1/trials/${encodeURIComponent(t.metadata.name)}` }, t.metadata.name)),
            h("td", {}, pill(conditionState(t))),
            names.map((n) => h("td", {}, fmtNum(p[n]))),
            h("td", {}, v === null ? "" : fmtNum(v)));
        }),
        { class: "trials" },
      ),
    );
    const done = trials.map((t, i) => [i + 1, objectiveOf(t, metric), t]).filter(([, v]) => v !== null);
    objectiveChart(objEl, metric, goal, done.map(([x, y]) => [x, y]));
    const dims = exp.spec.parameters.map((p) => ({
      name: p.name,
      categories: p.parameterType === "categorical" || p.parameterType === "discrete" ? (p.feasibleSpace.list || []).map(String) : null,
    }));
    dims.push({ name: metric });
    const rows = done.map(([, v, t]) => {
      const p = params(t);
      return [...dims.slice(0, -1).map((d) => (d.categories ? String(p[d.name]) : Number(p[d.name]))), v];
    });
    parallelChart(parEl, dims, rows, done.findIndex(([, , t]) => t.metadata.name === bestName));
  }

  try {
    const exp = await load();
    const refresh = throttle(() => load().catch((err) => body.prepend(errorBox(err))), 1000);
    const stops = [
      watch(ek, ns, { fieldSelector: `metadata.name=${name}`, resourceVersion: exp.metadata.resourceVersion }, refresh),
      watch(tk, ns, { labelSelector: `experiment=${name}`, resourceVersion: rv }, refresh),
    ];
    return () => {
      stops.forEach((s) => s());
      disposeAll(root);
    };
  } catch (err) {
    body.replaceChildren(errorBox(err));
    return () => disposeAll(root);
  }
}
