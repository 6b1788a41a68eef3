// Directed graphs (pipeline DAGs, lineage) drawn by cytoscape with the dagre layout.

import cytoscape from "cytoscape";
import dagre from "cytoscape-dagre";

cytoscape.use(dagre);

export const STATE_COLORS = {
  Pending: "#a0a7b4",
  Running: "#2f7fe0",
  Succeeded: "#1f9d55",
  Failed: "#d63c3c",
  Cancelled: "#d63c3c",
  Cached: "#7a5cc9",
  Skipped: "#c2c7d0",
};

/**
 * nodes: [{id, label, color?, state?}], edges: [{from, to, label?, kind?}]; an edge of kind
 * "exit" (a task that runs after others however they ended) is drawn dashed.
 * onSelect(id) is called when a node is clicked. Returns the cytoscape instance.
 */
export function drawGraph(container, nodes, edges, { onSelect, direction = "TB" } = {}) {
  const cy = cytoscape({
    container,
    elements: [
      ...nodes.map((n) => ({ data: { ...n, color: n.color || STATE_COLORS[n.state] || "#5b6b88" } })),
      ...edges.map((e, i) => ({ data: { id: `e${i}`, source: e.from, target: e.to, label: e.label || "", kind: e.kind || "" } })),
    ],
    layout: { name: "dagre", rankDir: direction, nodeSep: 30, rankSep: 45 },
    wheelSensitivity: 0.3,
    style: [
      {
        selector: "node",
        style: {
          shape: "round-rectangle",
          "background-color": "data(color)",
          label: "data(label)",
          color: "#fff",
          "font-size": 11,
          "text-valign": "center",
          "text-halign": "center",
          "text-wrap": "wrap",
          width: "label",
          height: "label",
          padding: "9px",
        },
      },
      { selector: "node:selected", style: { "border-width": 3, "border-color": "#111" } },
      {
        selector: "edge",
        style: {
          width: 1.5,
          "line-color": "#9aa3b2",
          "target-arrow-color": "#9aa3b2",
          "target-arrow-shape": "triangle",
          "curve-style": "bezier",
          label: "data(label)",
          "font-size": 9,
          color: "#667085",
        },
      },
      { selector: 'edge[kind = "exit"]', style: { "line-style": "dashed" } },
    ],
  });
  // The layout fits the graph to the box: a graph of one or two tasks would fill it with
  // giant nodes, so fitting does not zoom in past 1.5x (the user still can).
  cy.ready(() => {
    if (cy.zoom() > 1.5) {
      cy.zoom(1.5);
      cy.center();
    }
  });
  if (onSelect) cy.on("tap", "node", (ev) => onSelect(ev.target.id()));
  return cy;
}

export function setNodeState(cy, id, state, label) {
  const n = cy.getElementById(id);
  if (!n || n.empty()) return;
  n.data("state", state);
  n.data("color", STATE_COLORS[state] || "#5b6b88");
  if (label) n.data("label", label);
}
