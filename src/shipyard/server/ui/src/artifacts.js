// Artifact previews: metrics as tables, HTML and Markdown rendered in sandboxed frames,
// small text artifacts (datasets) as their first lines.

import { marked } from "marked";
import { h, kv, table } from "./dom.js";

const PREVIEW_BYTES = 256 * 1024;

export function downloadUrl(uri) {
  const m = /^artifact:\/\/sha256\/([0-9a-f]+)/.exec(uri || "");
  return m ? `/tracking/v1/artifacts/${m[1]}` : null;
}

function sandboxed(html) {
  // No allow-scripts, no allow-same-origin: the artifact can neither run code nor reach the API.
  const frame = h("iframe", { class: "preview", sandbox: "", title: "artifact preview" });
  frame.srcdoc = html;
  return frame;
}

function metricsTable(meta) {
  const rows = Object.entries(meta || {}).filter(([, v]) => typeof v !== "object");
  return table(["metric", "value"], rows.map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, String(v)))), { class: "metrics" });
}

function confusion(meta) {
  const cm = meta && meta.confusionMatrix;
  if (!cm) return null;
  return table(
    ["actual \\ predicted", ...cm.categories],
    cm.matrix.map((row, i) => h("tr", {}, h("th", {}, cm.categories[i]), row.map((v) => h("td", {}, String(v))))),
  );
}

async function fetchText(url) {
  const resp = await fetch(url);
  if (!resp.ok) throw new Error(`${resp.status} ${resp.statusText}`);
  return resp.text();
}

export function artifactCard(name, art) {
  const url = downloadUrl(art.uri);
  const body = h("div", { class: "artifact-body" });
  const card = h(
    "div",
    { class: "card artifact", "data-artifact": name },
    h("strong", {}, `${name} `),
    h("span", { class: "muted" }, `${art.type || "Artifact"}${art.size !== undefined ? ` · ${art.size} bytes` : ""} `),
    url ? h("a", { href: url, download: name }, "download") : null,
    body,
  );
  const meta = art.metadata || {};
  const type = art.type || "";
  if (type === "Metrics") body.append(metricsTable(meta));
  else if (type === "ClassificationMetrics") body.append(confusion(meta) || metricsTable(meta));
  else if (Object.keys(meta).length) body.append(kv(Object.entries(meta).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : String(v)])));
  if (url && (type === "HTML" || type === "Markdown")) {
    fetchText(url)
      .then((text) => body.append(sandboxed(type === "HTML" ? text : marked.parse(text))))
      .catch((err) => body.append(h("p", { class: "error" }, `preview failed: ${err.message}`)));
  } else if (url && (type === "Dataset" || type === "Artifact") && (art.size || 0) <= PREVIEW_BYTES) {
    fetchText(url)
      .then((text) => {
        if (/[\x00-\x08]/.test(text.slice(0, 512))) return;
        body.append(h("pre", { class: "yaml" }, text.split("\n").slice(0, 12).join("\n")));
      })
      .catch(() => {});
  }
  return card;
}
