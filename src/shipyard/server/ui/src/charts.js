// Charts from ECharts (SVG renderer: axis names and labels are real text in the page).

import { LineChart, ParallelChart, ScatterChart } from "echarts/charts";
import { GridComponent, LegendComponent, ParallelComponent, TooltipComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { SVGRenderer } from "echarts/renderers";

echarts.use([LineChart, ScatterChart, ParallelChart, GridComponent, LegendComponent, ParallelComponent, TooltipComponent, SVGRenderer]);

export function chart(el, option) {
  const c = echarts.getInstanceByDom(el) || echarts.init(el, null, { renderer: "svg" });
  c.setOption(option, true);
  return c;
}

export function disposeAll(root) {
  for (const el of root.querySelectorAll(".chart")) {
    const c = echarts.getInstanceByDom(el);
    if (c) c.dispose();
  }
}

/** Objective per trial (points) and the best value so far (a step line). */
export function objectiveChart(el, metric, goal, points) {
  let best = null;
  const bestLine = points.map(([x, y]) => {
    if (best === null || (goal === "maximize" ? y > best : y < best)) best = y;
    return [x, best];
  });
  return chart(el, {
    animation: false,
    tooltip: { trigger: "item" },
    legend: { data: [metric, "best so far"], top: 0, right: 10 },
    grid: { left: 60, right: 20, top: 40, bottom: 40 },
    xAxis: { type: "value", name: "trial", minInterval: 1 },
    yAxis: { type: "value", name: metric, scale: true },
    series: [
      { name: metric, type: "scatter", data: points, symbolSize: 9 },
      { name: "best so far", type: "line", step: "end", data: bestLine, symbol: "none", lineStyle: { width: 2 } },
    ],
  });
}

/** Parameters against the objective, one line per trial; the best trial in green. */
export function parallelChart(el, dims, rows, bestIndex) {
  return chart(el, {
    animation: false,
    parallelAxis: dims.map((d, i) =>
      d.categories ? { dim: i, name: d.name, type: "category", data: d.categories } : { dim: i, name: d.name, scale: true },
    ),
    parallel: { left: 50, right: 70, top: 40, bottom: 30 },
    series: [
      { name: "trials", type: "parallel", data: rows.filter((_, i) => i !== bestIndex), lineStyle: { width: 1.5, opacity: 0.55, color: "#2f7fe0" } },
      { name: "best", type: "parallel", data: bestIndex >= 0 ? [rows[bestIndex]] : [], lineStyle: { width: 3, opacity: 1, color: "#1f9d55" } },
    ],
  });
}

/** An ROC curve: points are [false positive rate, true positive rate, threshold]. */
export function rocChart(el, points) {
  const sorted = [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return chart(el, {
    animation: false,
    tooltip: {
      trigger: "item",
      // Numbers only: the tooltip is HTML.
      formatter: (p) => `fpr ${Number(p.value[0])}<br>tpr ${Number(p.value[1])}${p.value[2] !== undefined ? `<br>threshold ${Number(p.value[2])}` : ""}`,
    },
    grid: { left: 60, right: 20, top: 20, bottom: 50 },
    xAxis: { type: "value", name: "false positive rate", nameLocation: "middle", nameGap: 28, min: 0, max: 1 },
    yAxis: { type: "value", name: "true positive rate", nameLocation: "middle", nameGap: 40, min: 0, max: 1 },
    series: [
      { name: "ROC", type: "line", data: sorted, symbolSize: 5, lineStyle: { width: 2 } },
      { name: "chance", type: "line", data: [[0, 0], [1, 1]], symbol: "none", silent: true, lineStyle: { type: "dashed", width: 1, color: "#a0a7b4" } },
    ],
  });
}
