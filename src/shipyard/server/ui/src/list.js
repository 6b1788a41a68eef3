// A server-side paginated list of any kind (the server's Table columns), refreshed live.

import { api, collectionPath, kindFor, watch } from "./api.js";
import { errorBox, h, pill, throttle } from "./dom.js";

const PAGE = 50;
const STATE_COLUMNS = new Set(["STATUS", "STATE", "PHASE", "READY"]);

/**
 * Render a list into `root`. opts: plural, group, ns, link(name, ns) -> href, phases (for a
 * status filter), pageSize, order ("newest", the default, or "name"). Returns a cleanup
 * function.
 */
export async function renderList(root, opts) {
  const k = await kindFor(opts.plural, opts.group);
  const size = opts.pageSize || PAGE;
  const tokens = [""]; // continue token of each page seen so far
  let page = 0;
  let phase = "";
  // Newest first, as KFP's and Katib's dashboards list runs and experiments; or by name.
  let order = opts.order || "newest";
  let stopWatch = null;
  const body = h("div", { class: "list-body" });
  const info = h("span", { class: "muted" });
  const prev = h("button", { onclick: () => go(page - 1) }, "← Prev");
  const next = h("button", { onclick: () => go(page + 1) }, "Next →");
  const bar = h("div", { class: "toolbar" }, prev, next, info);
  const orderSel = h(
    "select",
    { "aria-label": "Order", onchange: (e) => { order = e.target.value; tokens.length = 1; go(0); } },
    h("option", { value: "newest" }, "newest first"),
    h("option", { value: "name" }, "by name"),
  );
  orderSel.value = order;
  bar.prepend(orderSel);
  if (opts.phases) {
    const sel = h(
      "select",
      { "aria-label": "Status filter", onchange: (e) => { phase = e.target.value; tokens.length = 1; go(0); } },
      h("option", { value: "" }, "all states"),
      opts.phases.map((p) => h("option", { value: p }, p)),
    );
    bar.prepend(sel);
  }
  root.append(bar, body);

  async function load() {
    const q = new URLSearchParams({ limit: String(size), as: "Table" });
    if (tokens[page]) q.set("continue", tokens[page]);
    if (phase) q.set("fieldSelector", `status.phase=${phase}`);
    if (order !== "name") q.set("order", order);
    const t0 = performance.now();
    const tbl = await api(`${collectionPath(k, opts.ns)}?${q}`);
    tokens[page + 1] = tbl.metadata.continue || null;
    draw(tbl);
    info.textContent = `page ${page + 1} · ${tbl.rows.length} shown${tbl.metadata.continue ? " · more" : ""}`;
    prev.disabled = page === 0;
    next.disabled = !tbl.metadata.continue;
    performance.mark("shipyard:list-rendered");
    root.dataset.renderMs = String(Math.round(performance.now() - t0));
    return tbl;
  }

  function draw(tbl) {
    const cols = tbl.columnDefinitions.map((c, i) => ({ ...c, i })).filter((c) => c.priority === 0);
    const nameCol = cols.find((c) => c.name === "NAME");
    const nsCol = cols.find((c) => c.name === "NAMESPACE");
    // Build the rows as one HTML string: thousands of nodes render much faster this way.
    const esc = (s) => String(s).replace(/[&<>"]/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[ch]);
    const rows = tbl.rows.map((r) => {
      const name = r.cells[nameCol.i];
      const ns = nsCol ? r.cells[nsCol.i] : opts.ns;
      const tds = cols.map((c) => {
        const v = r.cells[c.i];
        if (c === nameCol) return `<td><a href="${esc(opts.link(name, ns))}">${esc(name)}</a></td>`;
        if (STATE_COLUMNS.has(c.name) && v !== "") return `<td><span class="pill ${esc(v)}" data-state="${esc(v)}">${esc(v)}</span></td>`;
        return `<td>${esc(v)}</td>`;
      });
      return `<tr data-name="${esc(name)}">${tds.join("")}</tr>`;
    });
    const head = cols.map((c) => `<th>${esc(c.name)}</th>`).join("");
    body.innerHTML = tbl.rows.length
      ? `<table class="resource-list"><thead><tr>${head}</tr></thead><tbody>${rows.join("")}</tbody></table>`
      : `<p class="muted empty">No ${esc(k.name)} in this namespace yet.</p>`;
  }

  async function go(p) {
    if (p < 0 || (p > 0 && !tokens[p])) return;
    page = p;
    try {
      await load();
    } catch (err) {
      body.replaceChildren(errorBox(err));
    }
  }

  const refresh = throttle(() => go(page), 1000);
  try {
    const first = await load();
    // Watch from the list's version: no initial dump, only changes; re-read the page on any.
    stopWatch = watch(k, opts.ns, { resourceVersion: first.metadata.resourceVersion }, refresh);
  } catch (err) {
    body.replaceChildren(errorBox(err));
  }
  return () => stopWatch && stopWatch();
}

export { pill };
