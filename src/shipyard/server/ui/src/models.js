// Models: registered models, their versions and aliases, and a version's lineage graph.

import { api, get, list, patch } from "./api.js";
import { add, errorBox, fill, h, kv, table } from "./dom.js";
import { drawGraph } from "./graph.js";
import { renderList } from "./list.js";

const MODEL_LABEL = "registry.shipyard.dev/model";
const TYPE_COLORS = {
  ModelVersion: "#2458d6",
  Artifact: "#c9822b",
  TrackingRun: "#7a5cc9",
  InferenceService: "#1f9d55",
  PipelineRun: "#5b6b88",
  Experiment: "#5b6b88",
};

export function modelsList(root, { ns }) {
  root.append(h("h1", {}, "Models"));
  const box = h("div");
  root.append(box);
  return renderList(box, { plural: "registeredmodels", ns, link: (n, s) => `#/${s}/models/${encodeURIComponent(n)}` });
}

export async function modelPage(root, { ns, name, query }) {
  const body = h("div");
  const lineageBox = h("div", { id: "lineage", role: "img", "aria-label": "lineage graph" });
  const lineageInfo = h("div", { id: "lineage-info" });
  root.append(h("h1", {}, h("a", { href: `#/${ns}/models` }, "Models"), " / ", name), body);
  let cy = null;
  try {
    const rm = await get("registeredmodels", ns, name);
    const versions = (await list("modelversions", ns, { labelSelector: `${MODEL_LABEL}=${name}`, limit: "500" })).items;
    versions.sort((a, b) => b.spec.version - a.spec.version);
    const aliases = rm.spec.aliases || {};
    const aliasesOf = (v) => Object.entries(aliases).filter(([, n]) => n === v).map(([a]) => a);
    const chosen = Number(query.get("version")) || (versions[0] && versions[0].spec.version);
    const aliasInput = h("input", { placeholder: "alias (e.g. production)", "aria-label": "alias" });
    add(body,
      h("div", { class: "card" }, kv([
        ["description", rm.spec.description || ""],
        ["latest version", String((rm.status || {}).latestVersion ?? "")],
        ["aliases", Object.entries(aliases).map(([a, v]) => `${a} → v${v}`).join(", ") || "none"],
      ])),
      h("h2", {}, "Versions"),
      table(["version", "aliases", "format", "metrics", "run", "served by", "archived", ""],
        versions.map((v) => h("tr", { "data-version": String(v.spec.version) },
          h("td", {}, h("a", { href: `#/${ns}/models/${encodeURIComponent(name)}?version=${v.spec.version}` }, `v${v.spec.version}`)),
          h("td", {}, aliasesOf(v.spec.version).join(", ")),
          h("td", {}, v.spec.format || ""),
          h("td", {}, Object.entries(v.spec.metrics || {}).map(([m, x]) => `${m}=${x}`).join(", ")),
          h("td", {}, (v.spec.source || {}).run || ""),
          h("td", {}, ((v.status || {}).servedBy || []).join(", ")),
          h("td", {}, v.spec.archived ? "yes" : ""),
          h("td", {}, h("button", { onclick: async () => {
            const alias = aliasInput.value.trim();
            if (!alias) { aliasInput.focus(); return; }
            try { await patch("registeredmodels", ns, name, { spec: { aliases: { [alias]: v.spec.version } } }); location.reload(); } catch (err) { body.append(errorBox(err)); }
          } }, "set alias")))),
        { class: "versions" }),
      h("div", { class: "toolbar" }, aliasInput, h("span", { class: "muted" }, "type an alias, then “set alias” on a version")),
      chosen ? h("h2", {}, `Lineage of v${chosen}`) : null,
      chosen ? h("div", { class: "split" }, lineageBox, lineageInfo) : null,
    );
    if (chosen) {
      const g = await api(`/tracking/v1/namespaces/${encodeURIComponent(ns)}/lineage/models/${encodeURIComponent(name)}/${chosen}`);
      const nodes = g.nodes.map((n) => ({ id: n.id, label: `${n.type}\n${n.name || ""}`, color: TYPE_COLORS[n.type] }));
      cy = drawGraph(lineageBox, nodes, g.edges.map((e) => ({ from: e.from, to: e.to, label: e.relation })), {
        direction: "LR",
        onSelect: (id) => {
          const n = g.nodes.find((x) => x.id === id);
          lineageInfo.replaceChildren(h("div", { class: "card" }, kv(Object.entries(n).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : String(v)]))));
        },
      });
      fill(lineageInfo,
        table(["type", "name"], g.nodes.map((n) => h("tr", { "data-node": n.id }, h("td", {}, n.type), h("td", {}, n.name || n.id))), { class: "lineage-nodes" }),
      );
    }
  } catch (err) {
    body.append(errorBox(err));
  }
  return () => cy && cy.destroy();
}
