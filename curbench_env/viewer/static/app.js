// curbench view: renders runs from window.CURBENCH_RUNS / window.CURBENCH_RUN (set by data/*.js).
// Agent-written text is only ever assigned as text (el() makes text nodes), never parsed as HTML.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return node;
}
const fmt = (x, d = 2) => (typeof x === "number" ? x.toFixed(d) : "–");
const signed = (x) => (typeof x === "number" ? (x >= 0 ? "+" : "") + x.toFixed(2) : "–");

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = src + (location.protocol.startsWith("http") ? "?t=" + Date.now() : "");
    s.onload = () => { s.remove(); resolve(); };
    s.onerror = () => { s.remove(); reject(new Error("cannot load " + src)); };
    document.head.appendChild(s);
  });
}

const SVGNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const n = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  return n;
}
const COLOURS = ["#2b6cb0", "#c05621", "#2f855a", "#9b2c2c", "#6b46c1", "#b7791f", "#2c7a7b", "#97266d"];

// Score-per-iteration curves; each series: {label, points: [[x, y]...], base, best: bool}.
function chart(series, title) {
  const W = 640, H = 260, P = 36;
  const pts = series.flatMap((s) => s.points.concat(s.base != null ? [[0, s.base]] : []));
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const x1 = Math.max(1, ...xs), y0 = Math.min(...ys, 100) - 2, y1 = Math.max(...ys, 0) + 2;
  const X = (x) => P + (x / x1) * (W - 2 * P), Y = (y) => H - P - ((y - y0) / Math.max(1e-9, y1 - y0)) * (H - 2 * P);
  const root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img" });
  const t = svg("text", { x: P, y: 16, "font-size": 12 }); t.textContent = title; root.appendChild(t);
  for (let x = 0; x <= x1; x += Math.max(1, Math.ceil(x1 / 10))) {
    const l = svg("text", { x: X(x) - 3, y: H - P + 14, "font-size": 10 }); l.textContent = x; root.appendChild(l);
  }
  const xl = svg("text", { x: W / 2 - 60, y: H - 4, "font-size": 10 }); xl.textContent = "iteration (0 = base model)"; root.appendChild(xl);
  for (let k = 0; k <= 4; k++) {
    const y = y0 + (k / 4) * (y1 - y0);
    root.appendChild(svg("line", { x1: P, x2: W - P, y1: Y(y), y2: Y(y), stroke: "#eee" }));
    const l = svg("text", { x: 2, y: Y(y) + 4, "font-size": 10 }); l.textContent = y.toFixed(1); root.appendChild(l);
  }
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const line = (s.base != null ? [[0, s.base]] : []).concat(s.points);
    if (line.length) {
      root.appendChild(svg("polyline", { points: line.map((p) => `${X(p[0])},${Y(p[1])}`).join(" "), fill: "none", stroke: colour, "stroke-width": 2 }));
      let best = -Infinity;
      const bestLine = line.map((p) => [p[0], (best = Math.max(best, p[1]))]);
      root.appendChild(svg("polyline", { points: bestLine.map((p) => `${X(p[0])},${Y(p[1])}`).join(" "), fill: "none", stroke: colour, "stroke-dasharray": "4 3", opacity: 0.6 }));
      for (const p of line) root.appendChild(svg("circle", { cx: X(p[0]), cy: Y(p[1]), r: 3, fill: colour }));
    }
    const lg = svg("text", { x: W - P - 220, y: 30 + 13 * i, "font-size": 11, fill: colour }); lg.textContent = s.label; root.appendChild(lg);
  });
  return root;
}

function notes(list) {
  return (list || []).map((n) => el("div", { class: "note" }, "Note: " + n));
}

// ---- the comparison view -------------------------------------------------------------------
function compareView(data) {
  const runs = data.runs;
  const app = el("div");
  app.appendChild(el("h1", {}, `${runs.length} run(s)`));
  const keys = ["agent", "scaffold", "seed"];
  const value = (r, k) => (k === "scaffold" ? (r.scaffolds.join("+") || "none") : String(r[k]));
  const state = Object.fromEntries(keys.map((k) => [k, sessionStorage.getItem("f-" + k) || ""]));
  const filters = el("div", { class: "filters" });
  for (const k of keys) {
    const options = [...new Set(runs.map((r) => value(r, k)))].sort();
    const sel = el("select", { "data-filter": k }, el("option", { value: "" }, `all ${k}s`),
      options.map((o) => el("option", { value: o }, o)));
    sel.value = state[k];
    sel.onchange = () => { sessionStorage.setItem("f-" + k, sel.value); render(); };
    filters.appendChild(el("label", {}, k + " ", sel));
  }
  app.appendChild(filters);
  const shown = runs.filter((r) => keys.every((k) => !state[k] || value(r, k) === state[k]));
  app.appendChild(chart(shown.map((r) => ({ label: `${r.agent} / ${r.scaffolds.join("+") || "none"} (${r.name.slice(-18)})`,
    points: r.curve, base: r.base })), "Score per iteration (dashed: best so far)"));
  const head = ["run", "env", "agent", "scaffold", "seed", "base", "best", "gain", "iterations", "steps", "status"];
  app.appendChild(el("table", { id: "runs" }, el("tr", {}, head.map((h) => el("th", {}, h))),
    shown.map((r) => el("tr", {},
      el("td", {}, el("a", { href: "#run=" + r.key }, r.name), notes(r.notes)),
      el("td", {}, r.env || "?"), el("td", {}, r.agent), el("td", {}, r.scaffolds.join("+") || "none"),
      el("td", { class: "num" }, String(r.seed)), el("td", { class: "num" }, fmt(r.base)), el("td", { class: "num" }, fmt(r.best)),
      el("td", { class: "num" }, signed(typeof r.best === "number" && typeof r.base === "number" ? r.best - r.base : null)),
      el("td", { class: "num" }, r.iterations), el("td", { class: "num" }, r.steps), el("td", {}, r.finished ? "finished" : "running or interrupted")))));
  return app;
}

// ---- the run view --------------------------------------------------------------------------
function iterationCard(it, prevBest) {
  const lab = it.label || {};
  const tags = ["new_family", "grounded", "effective", "shallow"].map((k) =>
    el("span", { class: "tag " + (lab[k] ? "yes" : "no") }, `${k.replace("_", " ")}: ${lab[k] ? "yes" : "no"}`));
  const decl = Object.entries(it.declaration || {}).map(([k, v]) => el("div", {}, el("b", {}, k + ": "), v));
  const benches = Object.entries(it.scores || {});
  return el("div", { class: "card iteration", "data-iteration": it.iteration },
    el("h2", {}, `Iteration ${it.iteration}: average ${fmt(it.average)} `,
      el("span", { class: "meta" }, `(${signed(it.average - prevBest)} vs best before, reward ${signed(it.reward)}, Δ base ${signed(it.delta_vs_base)})`)),
    el("div", { class: "meta" }, `${it.file} · ${it.n_examples} examples · commit ${(it.commit || "").slice(0, 10)} · ` +
      `train ${fmt((it.timings || {}).train_s, 1)}s, eval ${fmt((it.timings || {}).eval_s, 1)}s` + (it.cached ? " · cached" : "")),
    it.note ? el("div", {}, el("b", {}, "note: "), it.note) : null,
    decl.length ? el("div", { class: "declaration" }, decl) : null,
    el("div", {}, el("span", { class: "tag" }, "family: " + (lab.family || "?")), tags, lab.judge_why ? el("div", { class: "meta" }, "judge: " + lab.judge_why) : null),
    el("table", {}, el("tr", {}, benches.map(([b]) => el("th", { class: "num" }, b))),
      el("tr", {}, benches.map(([, v]) => el("td", { class: "num" }, fmt(v, 1))))),
    el("div", { class: "meta" }, it.audit ? `audit: ${it.audit.clean ? "clean" : "leaks"} (${it.audit.checked} checked)` : "audit: –"),
    el("details", {}, el("summary", {}, "policy change since the previous submission (workspace.git)"),
      el("pre", { class: "diffstat" }, it.diff_stat || "(no diff recorded)"),
      el("pre", { class: "patch" }, (it.patch || "").split("\n").map((line) =>
        el("span", { class: line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "" }, line + "\n")))),
    el("details", {}, el("summary", {}, "train log"), el("pre", {}, it.train_log || "")),
    el("details", {}, el("summary", {}, "eval log"), el("pre", {}, it.eval_log || "")));
}

function stepView(s) {
  const sub = s.submission;
  const out = s.output || "";
  const long = out.split("\n").length > 20;
  const body = el("pre", { class: "output" }, out);
  return el("div", { class: "step " + (sub ? sub.status : ""), "data-step": s.step },
    el("div", {}, el("span", { class: "meta" }, `#${s.step} ${s.kind || ""} `),
      s.action != null ? el("span", { class: "cmd" }, "$ " + s.action) : null,
      el("span", { class: "meta" }, ` · exit ${s.exit_code ?? "–"} · ${fmt(s.duration_s, 2)}s` +
        (s.reward ? ` · reward ${signed(s.reward)}` : "") + (sub ? ` · submission ${sub.status}` : ""))),
    long ? el("details", {}, el("summary", {}, `output (${out.split("\n").length} lines)`), body) : body);
}

function runView(run) {
  const app = el("div");
  const u = run.usage || {};
  app.appendChild(el("h1", {}, run.name));
  app.appendChild(el("div", { class: "meta" }, `${run.env || "?"} · agent ${run.agent} · scaffolds ${run.scaffolds.join("+") || "none"} · seed ${run.seed} · ` +
    `${run.iterations} iterations, ${run.steps} steps · ${run.finished ? "finished" : "running or interrupted (updates live)"}` +
    (u.prompt_tokens !== undefined ? ` · tokens ${u.prompt_tokens} in / ${u.completion_tokens} out · $${fmt(u.cost_usd, 4)}` : "")));
  notes(run.notes).forEach((n) => app.appendChild(n));
  app.appendChild(chart([{ label: "average (dashed: best so far)", points: run.curve, base: run.base }], `base ${fmt(run.base)} · best ${fmt(run.best)}`));
  const benches = [...new Set(run.iterations_detail.flatMap((it) => Object.keys(it.scores || {})))];
  if (benches.length) {
    app.appendChild(chart(benches.map((b) => ({ label: b, points: run.iterations_detail
      .filter((it) => it.scores && typeof it.scores[b] === "number").map((it) => [it.iteration, it.scores[b]]) })),
      "Per-benchmark scores"));
  }
  app.appendChild(el("h2", {}, "Iterations"));
  let best = typeof run.base === "number" ? run.base : 0;
  for (const it of run.iterations_detail) {
    app.appendChild(iterationCard(it, best));
    if (typeof it.average === "number") best = Math.max(best, it.average);
  }
  app.appendChild(el("h2", {}, "Timeline"));
  for (const s of run.timeline) app.appendChild(stepView(s));
  return app;
}

// ---- routing and live updates ------------------------------------------------------------------
let timer = null;
async function render() {
  clearTimeout(timer);
  const app = document.getElementById("app");
  const m = location.hash.match(/run=(\d+)/);
  try {
    if (m) {
      await loadScript(`data/run-${m[1]}.js`);
      const run = window.CURBENCH_RUN;
      document.getElementById("where").textContent = " › " + run.name;
      const stamp = `${run.key}:${run.steps}:${run.iterations}:${run.finished}`;
      if (app.dataset.stamp !== stamp) {  // re-render only when the run moved on (keeps open folds)
        app.replaceChildren(runView(run));
        app.dataset.stamp = stamp;
      }
      if (!run.finished && location.protocol.startsWith("http")) timer = setTimeout(render, 3000);
    } else {
      await loadScript("data/runs.js");
      document.getElementById("where").textContent = "";
      app.replaceChildren(compareView(window.CURBENCH_RUNS));
      app.dataset.stamp = "";
      if (location.protocol.startsWith("http")) timer = setTimeout(render, 5000);
    }
  } catch (e) {
    app.replaceChildren(el("div", { class: "note" }, String(e)));
  }
}
window.addEventListener("hashchange", render);
render();
