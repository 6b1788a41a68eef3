// Artifact previews: metrics as tables, HTML and Markdown rendered in sandboxed frames,
// small text artifacts (datasets) as their first lines.

import { marked } from "marked";
import { rocChart } from "./charts.js";
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

function confusion(cm) {
  // kfp's shape (annotationSpecs + rows); {categories, matrix} from artifacts written before.
  const categories = cm.annotationSpecs ? cm.annotationSpecs.map((s) => s.displayName) : cm.categories || [];
  const rows = cm.rows ? cm.rows.map((r) => r.row) : cm.matrix || [];
  return table(
    ["actual \\ predicted", ...categories],
    rows.map((row, i) => h("tr", {}, h("th", {}, categories[i]), row.map((v) => h("td", {}, String(v))))),
    { class: "confusion" },
  );
}

/** ClassificationMetrics: the ROC curve plotted, the confusion matrix as a table. */
function classification(meta) {
  const out = h("div", { class: "classification" });
  const roc = meta.confidenceMetrics || [];
  if (roc.length) {
    const el = h("div", { class: "chart roc", "aria-label": "ROC curve" });
    out.append(el);
    const points = roc.map((p) => [p.falsePositiveRate, p.recall, p.confidenceThreshold]);
    requestAnimationFrame(() => rocChart(el, points)); // once the card is in the page
  }
  if (meta.confusionMatrix) out.append(confusion(meta.confusionMatrix));
  const scalars = Object.entries(meta).filter(([, v]) => typeof v !== "object");
  if (scalars.length || !out.childNodes.length) out.append(metricsTable(meta));
  return out;
}

function sliced(meta) {
  const slices = meta.evaluationSlices || [];
  if (!slices.length) return metricsTable(meta);
  return h("div", {}, ...slices.map((s) => h("div", { class: "slice", "data-slice": s.slice }, h("h4", {}, `slice ${s.slice}`), classification(s.sliceClassificationMetrics || {}))));
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
  else if (type === "ClassificationMetrics") body.append(classification(meta));
  else if (type === "SlicedClassificationMetrics") body.append(sliced(meta));
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
