// The dashboard: a hash router over the pages, the navigation and the namespace switcher.

import "./style.css";
import { api } from "./api.js";
import { errorBox, h } from "./dom.js";
import { experimentPage, experimentsList } from "./experiments.js";
import { modelPage, modelsList } from "./models.js";
import { applyPage, kindList, kindsPage, objectPage } from "./resources.js";
import { runPage, runsList } from "./runs.js";
import { servicePage, servicesList } from "./services.js";
import { trainingList, trainingPage } from "./training.js";

const SECTIONS = [
  ["runs", "Pipeline runs"],
  ["experiments", "Experiments"],
  ["training", "Training jobs"],
  ["services", "Inference services"],
  ["models", "Models"],
  ["r", "All resources"],
  ["apply", "Apply YAML"],
];

// [pattern after "/{ns}/", page]; ":x" captures one path segment.
const ROUTES = [
  ["runs", runsList],
  ["runs/:name", runPage],
  ["experiments", experimentsList],
  ["experiments/:name", experimentPage],
  ["training", trainingList],
  ["training/:group/:plural/:name", trainingPage],
  ["services", servicesList],
  ["services/:name", servicePage],
  ["models", modelsList],
  ["models/:name", modelPage],
  ["r", kindsPage],
  ["r/:group/:version/:plural", kindList],
  ["r/:group/:version/:plural/:name", objectPage],
  ["apply", applyPage],
];

const app = document.getElementById("app");
const nav = document.getElementById("nav");
const nsSelect = document.getElementById("ns-select");
let cleanup = null;
let generation = 0;

function currentNs() {
  return localStorage.getItem("shipyard.namespace") || "default";
}

function match(rest) {
  const parts = rest.split("/").filter(Boolean).map(decodeURIComponent);
  for (const [pattern, page] of ROUTES) {
    const segs = pattern.split("/");
    if (segs.length !== parts.length) continue;
    const params = {};
    if (segs.every((s, i) => (s.startsWith(":") ? ((params[s.slice(1)] = parts[i]), true) : s === parts[i]))) {
      return [page, params, segs[0]];
    }
  }
  return [null, {}, ""];
}

async function route() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, qs] = raw.split("?");
  const [nsPart, ...rest] = path.split("/");
  if (!nsPart) {
    location.replace(`#/${currentNs()}/runs`);
    return;
  }
  const ns = decodeURIComponent(nsPart);
  localStorage.setItem("shipyard.namespace", ns);
  if (nsSelect.value !== ns) await loadNamespaces(ns);
  const [page, params, section] = match(rest.join("/"));
  nav.replaceChildren(...SECTIONS.map(([s, label]) => h("a", { href: `#/${ns}/${s}`, class: s === section ? "active" : "" }, label)));
  if (cleanup) {
    try {
      cleanup();
    } catch (err) {
      console.error(err);
    }
    cleanup = null;
  }
  const mine = ++generation;
  app.replaceChildren();
  if (!page) {
    app.append(h("h1", {}, "Not found"), h("p", {}, "No page at ", h("code", {}, location.hash), "."));
    return;
  }
  const root = h("div", { class: "page", "data-page": section });
  app.append(root);
  try {
    const done = await page(root, { ns, query: new URLSearchParams(qs || ""), ...params });
    if (mine !== generation) {
      if (typeof done === "function") done(); // navigated away while loading
    } else cleanup = typeof done === "function" ? done : null;
  } catch (err) {
    root.append(errorBox(err));
  }
}

async function loadNamespaces(selected) {
  let names = [selected];
  try {
    const list = await api("/api/v1/namespaces?limit=500");
    names = [...new Set([...list.items.map((n) => n.metadata.name), selected])].sort();
  } catch (err) {
    console.error(err);
  }
  nsSelect.replaceChildren(...names.map((n) => h("option", { value: n, selected: n === selected }, n)));
  nsSelect.value = selected;
}

nsSelect.addEventListener("change", () => {
  const rest = location.hash.replace(/^#\/?[^/?]*\/?/, "").split("/")[0].split("?")[0] || "runs";
  location.hash = `#/${encodeURIComponent(nsSelect.value)}/${rest}`;
});
window.addEventListener("hashchange", route);
route();
