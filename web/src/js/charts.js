// Two uPlot charts over recent closed slots: the winning price, and the spread of bids
// (lowest, highest and the winning bid) per slot. uPlot is loaded as a classic script (global).

const AXIS = "#94a3b8";
const GRID = "rgba(148,163,184,0.12)";

function axes(yLabel) {
  const common = { stroke: AXIS, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 }, font: "11px system-ui, sans-serif" };
  return [
    { ...common, label: "slot", labelFont: "11px system-ui, sans-serif", values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? String(v) : "")) },
    { ...common, label: yLabel, labelFont: "11px system-ui, sans-serif", size: 60, values: (u, vals) => vals.map((v) => fmtGwei(v)) },
  ];
}

function fmtGwei(v) {
  if (v === null || v === undefined) return "";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e9).toPrecision(3)} ETH`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(2).replace(/\.?0+$/, "");
  return v.toPrecision(2);
}

export class Charts {
  constructor(priceEl, spreadEl) {
    this.priceEl = priceEl;
    this.spreadEl = spreadEl;
    this.price = null;
    this.spread = null;
    this.available = typeof window.uPlot === "function";
    if (!this.available) return;
    const width = () => Math.max(priceEl.clientWidth, 240);
    this.price = new window.uPlot({
      width: width(), height: 200,
      scales: { x: { time: false }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] } },
      axes: axes("gwei"),
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      series: [
        { label: "slot", value: (u, v) => (v == null ? "—" : String(v)) },
        { label: "price", stroke: "#38bdf8", width: 2, fill: "rgba(56,189,248,0.12)", points: { size: 5, fill: "#38bdf8" },
          value: (u, v) => (v == null ? "—" : `${fmtGwei(v)} gwei`), spanGaps: false },
      ],
    }, [[], []], priceEl);
    this.spread = new window.uPlot({
      width: width(), height: 200,
      scales: { x: { time: false }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] } },
      axes: axes("gwei"),
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      bands: [{ series: [2, 1], fill: "rgba(168,85,247,0.16)" }],
      series: [
        { label: "slot", value: (u, v) => (v == null ? "—" : String(v)) },
        { label: "lowest", stroke: "rgba(168,85,247,0.8)", width: 1, points: { show: false }, value: (u, v) => (v == null ? "—" : fmtGwei(v)) },
        { label: "highest", stroke: "rgba(168,85,247,0.8)", width: 1, points: { show: false }, value: (u, v) => (v == null ? "—" : fmtGwei(v)) },
        { label: "winner", stroke: "#f59e0b", width: 2, points: { size: 5, fill: "#f59e0b" }, value: (u, v) => (v == null ? "—" : fmtGwei(v)) },
      ],
    }, [[], [], [], []], spreadEl);
    const ro = new ResizeObserver(() => this.resize());
    ro.observe(priceEl);
    ro.observe(spreadEl);
  }

  resize() {
    if (!this.available) return;
    for (const [chart, el] of [[this.price, this.priceEl], [this.spread, this.spreadEl]]) {
      const w = Math.max(el.clientWidth, 240);
      if (Math.abs(chart.width - w) > 1) chart.setSize({ width: w, height: 200 });
    }
  }

  /** @param {{slot:number, price:number|null, min:number|null, max:number|null, winner:number|null}[]} points oldest first */
  update(points) {
    if (!this.available) return;
    const xs = points.map((p) => p.slot);
    this.price.setData([xs, points.map((p) => p.price)]);
    this.spread.setData([xs, points.map((p) => p.min), points.map((p) => p.max), points.map((p) => p.winner)]);
  }
}
