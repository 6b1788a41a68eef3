// Any kind: the list of kinds, a list of one kind, one object as YAML (delete, edit), and
// the YAML editor that applies documents (create or update, as `shipyard apply -f`).

import YAML from "yaml";
import { api, applyObject, kinds, objectPath } from "./api.js";
import { add, errorBox, h, pill, table } from "./dom.js";
import { renderList } from "./list.js";

const gpath = (g) => g || "core";
const ggroup = (g) => (g === "core" ? "" : g);
let draft = null; // YAML handed from an object page to the editor

export async function kindsPage(root, { ns }) {
  const all = await kinds();
  add(root,
    h("h1", {}, "All resources"),
    table(["kind", "group/version", "plural", "scope"], all.map((k) =>
      h("tr", {},
        h("td", {}, h("a", { href: `#/${ns}/r/${gpath(k.group)}/${k.version}/${k.name}` }, k.kind)),
        h("td", {}, k.group ? `${k.group}/${k.version}` : k.version),
        h("td", {}, k.name), h("td", {}, k.namespaced ? "namespaced" : "cluster"))), { class: "kinds" }),
  );
  return null;
}

async function kindAt(group, version, plural) {
  const all = await kinds();
  const k = all.find((x) => x.group === ggroup(group) && x.version === version && x.name === plural);
  if (!k) throw new Error(`this server serves no ${plural} in ${group}/${version}`);
  return k;
}

export async function kindList(root, { ns, group, version, plural }) {
  const k = await kindAt(group, version, plural);
  root.append(h("h1", {}, h("a", { href: `#/${ns}/r` }, "All resources"), " / ", k.kind));
  const box = h("div");
  root.append(box);
  return renderList(box, { plural, group: k.group, ns: k.namespaced ? ns : null, link: (n, s) => `#/${s || ns}/r/${group}/${version}/${plural}/${encodeURIComponent(n)}` });
}

export async function objectPage(root, { ns, group, version, plural, name }) {
  const k = await kindAt(group, version, plural);
  const path = objectPath(k, k.namespaced ? ns : null, name);
  const obj = await api(path);
  const text = YAML.stringify(obj);
  const msg = h("div");
  add(root,
    h("h1", {}, h("a", { href: `#/${ns}/r/${group}/${version}/${plural}` }, k.kind), " / ", name, " ", pill((obj.status || {}).phase || "")),
    h("div", { class: "toolbar" },
      h("button", { onclick: () => { draft = text; location.hash = `#/${ns}/apply`; } }, "Edit"),
      h("button", { class: "danger", onclick: async () => {
        if (!window.confirm(`Delete ${k.kind} ${name}?`)) return;
        try { await api(path, { method: "DELETE" }); location.hash = `#/${ns}/r/${group}/${version}/${plural}`; } catch (err) { msg.replaceChildren(errorBox(err)); }
      } }, "Delete"),
      k.kind === "Pod" ? h("a", { href: `/api/v1/namespaces/${ns}/pods/${encodeURIComponent(name)}/log`, target: "_blank" }, "log") : null),
    msg,
    h("pre", { class: "yaml", id: "object-yaml" }, text),
  );
  return null;
}

export async function applyPage(root, { ns }) {
  const editor = h("textarea", { rows: "24", id: "yaml-editor", "aria-label": "YAML", spellcheck: "false" });
  editor.value = draft || `# One or more documents separated by ---; namespace defaults to "${ns}".\n`;
  draft = null;
  const out = h("div", { id: "apply-result" });
  async function apply() {
    out.replaceChildren();
    let docs;
    try {
      docs = YAML.parseAllDocuments(editor.value).map((d) => {
        if (d.errors.length) throw d.errors[0];
        return d.toJS();
      }).filter((d) => d && typeof d === "object");
    } catch (err) {
      out.append(errorBox(`YAML: ${err.message}`));
      return;
    }
    if (!docs.length) out.append(errorBox("nothing to apply: the editor holds no document"));
    for (const doc of docs) {
      const label = `${doc.kind || "?"}/${(doc.metadata || {}).name || "?"}`;
      try {
        const r = await applyObject(doc, ns);
        const n = r.obj.metadata;
        out.append(h("p", { class: "applied" }, `${label} ${r.action} `,
          h("a", { href: `#/${n.namespace || ns}/r/${gpath(r.kind.group)}/${r.kind.version}/${r.kind.name}/${encodeURIComponent(n.name)}` }, "view")));
      } catch (err) {
        out.append(errorBox(`${label}: ${err.message}`));
      }
    }
  }
  root.append(h("h1", {}, "Apply YAML"), editor, h("div", { class: "toolbar" }, h("button", { class: "primary", onclick: apply }, "Apply")), out);
  return null;
}
