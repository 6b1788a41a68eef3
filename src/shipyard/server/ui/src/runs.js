// Pipeline runs: the list, and a run page with its DAG, live task states, logs and artifacts.

import { api, collectionPath, get, kindFor, patch, remove, streamLogs, watch } from "./api.js";
import { artifactCard } from "./artifacts.js";
import { add, errorBox, fill, h, kv, pill, table } from "./dom.js";
import { drawGraph, setNodeState } from "./graph.js";
import { renderList } from "./list.js";

const TERMINAL = ["Succeeded", "Failed", "Cancelled"];

export async function runsList(root, { ns }) {
  add(root,
    h("h1", {}, "Pipeline runs"),
    h("p", { class: "muted" }, "Start one with ", h("code", {}, "shipyard run PIPELINE.py"), " or apply a PipelineRun from the ", h("a", { href: `#/${ns}/apply` }, "YAML editor"), "."),
  );
  const recurring = h("section", { id: "recurring-runs" });
  const box = h("div");
  root.append(recurring, box);
  // Both at once: the runs do not wait for the look for recurring runs.
  const [stopRecurring, stopRuns] = await Promise.all([
    recurringRuns(recurring, ns),
    renderList(box, {
      plural: "pipelineruns",
      ns,
      link: (name, n) => `#/${n}/runs/${encodeURIComponent(name)}`,
      phases: ["Pending", "Running", "Succeeded", "Failed", "Cancelled"],
    }),
  ]);
  return () => {
    if (stopRecurring) stopRecurring();
    if (stopRuns) stopRuns();
  };
}

/** The namespace's RecurringRuns (schedule, last tick, active runs), as KFP's dashboard
 * lists them beside the runs; shown only when there are some. Each links to its YAML. */
async function recurringRuns(root, ns) {
  let k;
  try {
    k = await kindFor("recurringruns");
    const some = await api(`${collectionPath(k, ns)}?limit=1`);
    if (!some.items.length) return null;
  } catch (err) {
    console.error(err); // the runs are listed all the same
    return null;
  }
  const box = h("div");
  add(root, h("h2", {}, "Recurring runs"), box, h("h2", {}, "Runs"));
  const at = `${k.group || "core"}/${k.version}/${k.name}`;
  return renderList(box, {
    plural: "recurringruns",
    group: k.group,
    ns,
    order: "name",
    pageSize: 10,
    link: (name, n) => `#/${n}/r/${at}/${encodeURIComponent(name)}`,
  });
}

/** State of one spec task from its status entries (several for ParallelFor iterations). */
function aggregate(entries) {
  if (!entries.length) return "Pending";
  const states = entries.map((e) => e.state);
  for (const s of ["Running", "Failed", "Cancelled", "Pending"]) if (states.includes(s)) return s;
  if (states.every((s) => s === "Skipped")) return "Skipped";
  if (states.every((s) => s === "Cached")) return "Cached";
  return "Succeeded";
}

function entriesByTask(run) {
  const by = {};
  for (const [id, e] of Object.entries((run.status || {}).tasks || {})) {
    (by[e.task || id] ||= []).push({ id, ...e });
  }
  return by;
}

async function pipelineSpec(run, ns) {
  if (run.spec.pipelineSpec) return run.spec.pipelineSpec;
  const pl = await get("pipelines", ns, run.spec.pipelineRef.name);
  return pl.spec;
}

export async function runPage(root, { ns, name }) {
  const k = await kindFor("pipelineruns");
  let run = await get("pipelineruns", ns, name);
  const spec = await pipelineSpec(run, ns);
  let selected = null;
  let stopLogs = null;
  let logKey = null;
  let logText = "";

  const phaseEl = h("span", { id: "run-phase" });
  const summary = h("div");
  const actions = h("div", { class: "toolbar" });
  const tasksBox = h("div", { id: "tasks" });
  const panel = h("div", { class: "card", id: "task-panel" }, h("p", { class: "muted" }, "Click a task in the graph or the table to see its inputs, outputs, artifacts and logs."));
  const dag = h("div", { id: "dag", role: "img", "aria-label": "pipeline graph" });
  add(root,
    h("h1", {}, h("a", { href: `#/${ns}/runs` }, "Pipeline runs"), " / ", name, " ", phaseEl),
    actions,
    summary,
    h("div", { class: "split" }, h("div", {}, dag, h("h2", {}, "Tasks"), tasksBox), panel),
  );

  const nodes = spec.tasks.map((t) => ({ id: t.name, label: t.name, state: "Pending" }));
  const edges = [];
  for (const t of spec.tasks) {
    for (const d of t.dependsOn || []) edges.push({ from: d, to: t.name });
    // Exit handlers and ignore_upstream_failure tasks run after these whatever became of them.
    for (const d of t.exitFor || []) edges.push({ from: d, to: t.name, kind: "exit" });
  }
  const cy = drawGraph(dag, nodes, edges, { onSelect: (id) => select(id) });

  function drawActions() {
    const phase = (run.status || {}).phase || "Pending";
    fill(actions,
      h("button", { class: "danger", disabled: TERMINAL.includes(phase) || run.spec.cancelled, onclick: cancel }, "Cancel"),
      h("button", { disabled: !["Failed", "Cancelled"].includes(phase), onclick: retry }, "Retry"),
      h("button", { class: "danger", onclick: del }, "Delete"),
      h("a", { href: `#/${ns}/r/shipyard.dev/v1/pipelineruns/${encodeURIComponent(name)}` }, "YAML"),
    );
  }

  async function act(fn) {
    try {
      await fn();
    } catch (err) {
      actions.append(errorBox(err));
    }
  }
  const cancel = () => act(() => patch("pipelineruns", ns, name, { spec: { cancelled: true } }));
  const retry = () =>
    act(() => patch("pipelineruns", ns, name, { metadata: { annotations: { "pipelines.shipyard.dev/retry": String(Date.now() / 1000) } } }));
  const del = () =>
    act(async () => {
      if (!window.confirm(`Delete pipeline run ${name}?`)) return;
      await remove("pipelineruns", ns, name);
      location.hash = `#/${ns}/runs`;
    });

  function update() {
    const st = run.status || {};
    phaseEl.replaceChildren(pill(st.phase || "Pending"));
    fill(summary,
      h(
        "div",
        { class: "card" },
        kv([
          ["pipeline", (run.spec.pipelineRef || {}).name || "(inline)"],
          ["parameters", JSON.stringify(st.parameters || run.spec.parameters || {})],
          st.durationSeconds !== undefined && ["duration", `${st.durationSeconds.toFixed(2)} s`],
          st.message && ["message", st.message],
          st.outputs && ["outputs", JSON.stringify(st.outputs)],
        ]),
      ),
    );
    const by = entriesByTask(run);
    const rows = spec.tasks.map((t) => {
      const entries = by[t.name] || [];
      const state = aggregate(entries);
      const n = entries.length > 1 ? ` ×${entries.length}` : "";
      setNodeState(cy, t.name, state, `${t.name}${n}\n${state}`);
      const dur = entries.reduce((a, e) => a + (e.durationSeconds || 0), 0);
      return h(
        "tr",
        { "data-task": t.name, onclick: () => select(t.name), style: "cursor:pointer" },
        h("td", {}, t.name),
        h("td", {}, pill(state)),
        h("td", {}, dur ? `${dur.toFixed(2)} s` : ""),
        h("td", {}, String(entries.reduce((a, e) => a + (e.attempts || 0), 0) || "")),
      );
    });
    tasksBox.replaceChildren(table(["task", "state", "duration", "attempts"], rows, { class: "tasks" }));
    drawActions();
    if (selected) drawPanel();
  }

  function select(task) {
    selected = task;
    cy.$("node:selected").unselect();
    cy.getElementById(task).select();
    drawPanel();
  }

  function drawPanel() {
    const entries = entriesByTask(run)[selected] || [];
    const state = aggregate(entries);
    const first = entries.find((e) => e.pod) || entries[0] || {};
    const logs = h("pre", { class: "logs", id: "task-logs" });
    const arts = Object.entries(first.artifacts || {}).map(([n, a]) => artifactCard(n, a));
    fill(panel,
      h("h2", {}, `Task ${selected} `, pill(state)),
      kv([
        first.pod && ["pod", first.pod],
        entries.length > 1 && ["iterations", String(entries.length)],
        first.inputs && ["inputs", JSON.stringify(first.inputs.parameters || {})],
        first.outputs && ["outputs", JSON.stringify(first.outputs)],
        first.message && ["message", first.message],
        first.error && ["error", String(first.error)],
      ]),
      arts.length ? h("h2", {}, "Artifacts") : null,
      ...arts,
      h("h2", {}, "Logs"),
      logs,
    );
    // Re-stream only when the pod changes, or when it stops running (to read the full log).
    const key = `${first.pod}|${["Running", "Pending"].includes(first.state)}`;
    if (logKey === key) {
      logs.textContent = logText;
      return;
    }
    if (stopLogs) stopLogs();
    logKey = key;
    logText = "";
    stopLogs = null;
    if (!first.pod) {
      const why = { Cached: "cached: no pod ran", Skipped: "skipped: no pod ran" }[first.state];
      logs.textContent = `(${why || "no pod yet"})`;
      return;
    }
    const follow = ["Running", "Pending"].includes(first.state);
    const show = () => {
      const cur = document.getElementById("task-logs");
      if (cur) {
        cur.textContent = logText;
        cur.scrollTop = cur.scrollHeight;
      }
    };
    const onChunk = (chunk) => {
      logText += chunk;
      show();
    };
    const onEnd = () => {
      if (logText === "" && logKey === key) {
        logText = "(no output)";
        show();
      }
    };
    stopLogs = streamLogs(ns, first.pod, { follow }, onChunk, onEnd);
  }

  update();
  const stop = watch(k, ns, { fieldSelector: `metadata.name=${name}`, resourceVersion: run.metadata.resourceVersion }, (ev) => {
    if (ev.type === "DELETED") {
      phaseEl.replaceChildren(pill("Deleted"));
      return;
    }
    if (ev.type === "ERROR") return;
    run = ev.object;
    update();
  });
  return () => {
    stop();
    if (stopLogs) stopLogs();
    cy.destroy();
  };
}

