// neuroqd explore: the archive, curves and files of the runs that experiments/explore serves.
// Plain JavaScript on <canvas>: a plotting library would be a download or a CDN, and the page
// needs only filled rectangles, polygons, dots and lines. Data arrive as one array per
// quantity (see experiments/explore/runs.py), so a 10,000-cell archive draws in milliseconds.
"use strict";

const POLL_MS = 2000;        // live runs: how often the page asks which files changed
const RENDER_POLL_MS = 400;  // a render in progress: how often the page asks again
const FIXED_CURVES = ["qd_score", "coverage", "max_fitness"];
const NOT_OTHER = new Set(["iteration", "evaluations", ...FIXED_CURVES]);
const MARGIN = {left: 62, right: 78, top: 12, bottom: 44};      // archive plot
const CURVE_MARGIN = {left: 58, right: 12, top: 22, bottom: 34};

const $ = (id) => document.getElementById(id);
const state = {
  runs: [], colormap: [], palette: [], current: 0,
  archive: null,       // the current run's archive payload, plus derived lookups
  metrics: [],         // per run: metrics payload (or null until loaded)
  files: null,         // the current run's config + summary payload
  selected: null,      // {cell} of the clicked elite, outlined on the plot
  marks: null,         // {target, reached}: the distilled policy's last rollout
  stamps: [],          // /api/status of the last poll
  loading: new Set(),  // fetches in flight, so a slow one is not asked twice
};
// For tests and benchmarks: draw counts, metrics rows per run, ms from navigation to drawn.
window.__neuroqd = {draws: {archive: 0, curves: 0}, rows: {}, ready: null, errors: []};

// -- fetching -----------------------------------------------------------------------------

async function getJSON(url) {
  const response = await fetch(url, {cache: "no-store"});
  let body;
  try { body = await response.json(); } catch (e) { body = {error: response.statusText}; }
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return [response.status, body];
}

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
  if (isError) window.__neuroqd.errors.push(text);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function once(key, fn) {
  if (state.loading.has(key)) return;
  state.loading.add(key);
  try { await fn(); } catch (e) { setStatus(`${key}: ${e.message}`, true); }
  finally { state.loading.delete(key); }
}

// -- canvas helpers -----------------------------------------------------------------------

function setupCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const rect = canvas.getBoundingClientRect();
  canvas.width = Math.max(1, Math.round(rect.width * dpr));
  canvas.height = Math.max(1, Math.round(rect.height * dpr));
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, rect.width, rect.height);
  return {ctx, w: rect.width, h: rect.height};
}

function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
  return ticks;
}

function fmtTick(v) {  // axis labels: short, "250k" rather than "2.50e+5"
  const a = Math.abs(v);
  for (const [scale, suffix] of [[1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
    if (a >= 10 * scale) return +(v / scale).toPrecision(3) + suffix;
  }
  return a !== 0 && a < 1e-3 ? v.toExponential(1) : +v.toPrecision(4) + "";
}

function fmt(v, digits = 4) {  // axis ticks and tooltips: 4 significant digits; the panel: 6
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 10 ** (digits + 1) || a < 1e-3)) return v.toExponential(digits - 2);
  return +v.toPrecision(digits) + "";
}

// Scales of a plot: data -> CSS pixels inside the frame {x, y, w, h}.
function scales(frame, xr, yr, yDown = false) {
  const sx = (v) => frame.x + ((v - xr[0]) / (xr[1] - xr[0])) * frame.w;
  const sy = yDown ? (v) => frame.y + ((v - yr[0]) / (yr[1] - yr[0])) * frame.h
                   : (v) => frame.y + frame.h - ((v - yr[0]) / (yr[1] - yr[0])) * frame.h;
  const ix = (px) => xr[0] + ((px - frame.x) / frame.w) * (xr[1] - xr[0]);
  const iy = yDown ? (py) => yr[0] + ((py - frame.y) / frame.h) * (yr[1] - yr[0])
                   : (py) => yr[0] + ((frame.y + frame.h - py) / frame.h) * (yr[1] - yr[0]);
  return {sx, sy, ix, iy};
}

function drawAxes(ctx, frame, xr, yr, s, xLabel, yLabel) {
  ctx.strokeStyle = "#444";
  ctx.lineWidth = 1;
  ctx.strokeRect(frame.x, frame.y, frame.w, frame.h);
  ctx.fillStyle = "#333";
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const t of niceTicks(Math.min(...xr), Math.max(...xr), 6)) {
    const x = s.sx(t);
    ctx.fillRect(x, frame.y + frame.h, 1, 4);
    ctx.fillText(fmtTick(t), x, frame.y + frame.h + 6);
  }
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const t of niceTicks(Math.min(...yr), Math.max(...yr), 5)) {
    const y = s.sy(t);
    ctx.fillRect(frame.x - 4, y, 4, 1);
    ctx.fillText(fmtTick(t), frame.x - 6, y);
  }
  ctx.font = "12px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "bottom";
  ctx.fillText(xLabel, frame.x + frame.w / 2, frame.y + frame.h + 36);
  ctx.save();
  ctx.translate(frame.x - 46, frame.y + frame.h / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = "middle";
  ctx.fillText(yLabel, 0, 0);
  ctx.restore();
}

// -- the archive --------------------------------------------------------------------------

function colourOf(f, a) {
  const t = (f - a.vmin) / (a.vmax - a.vmin);
  return state.colormap[Math.max(0, Math.min(255, Math.round(t * 255)))];
}

// Lookups the drawing and hit-testing share: elite position of each cell, ranges, order.
function prepareArchive(a) {
  const run = state.runs[state.current];
  a.names = run.descriptor_names;
  a.bounds = run.descriptor_bounds;
  a.yDown = run.descriptor_y_down;
  a.n = a.fitness.length;
  a.eliteOf = new Int32Array(Math.max(a.cells, 1)).fill(-1);
  a.index.forEach((cell, i) => { if (cell < a.eliteOf.length) a.eliteOf[cell] = i; });
  a.xRange = a.bounds[0];
  if (a.descriptor_dim >= 2) {
    a.yRange = a.bounds[1];
    a.yValues = a.descriptors[1];
    a.yName = a.names[1] || "descriptor 2";
  } else {  // 1-D: fitness on y
    const pad = (a.vmax - a.vmin) * 0.05;
    a.yRange = [a.vmin - pad, a.vmax + pad];
    a.yValues = a.fitness;
    a.yName = "fitness";
    a.yDown = false;
  }
  a.order = Array.from(a.fitness.keys()).sort((i, j) => a.fitness[i] - a.fitness[j]);
  if (a.centroids) a.nCentroids = a.centroids.length / 2;
  return a;
}

function cellRect(a, s, cell) {  // grid view: pixel rectangle of a cell
  const [nx, ny] = a.dims;
  const i = Math.floor(cell / ny), j = cell % ny;  // ribs: index = i * ny + j (C order)
  const wx = (a.xRange[1] - a.xRange[0]) / nx, wy = (a.yRange[1] - a.yRange[0]) / ny;
  const x0 = s.sx(a.xRange[0] + i * wx), x1 = s.sx(a.xRange[0] + (i + 1) * wx);
  const y0 = s.sy(a.yRange[0] + j * wy), y1 = s.sy(a.yRange[0] + (j + 1) * wy);
  return [Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0)];
}

function polygonPath(ctx, a, s, cell) {  // CVT view: path of a cell's clipped Voronoi polygon
  const start = a.polygon_start[cell], end = a.polygon_start[cell + 1];
  for (let k = start; k < end; k++) {
    const x = s.sx(a.polygon_xy[2 * k]), y = s.sy(a.polygon_xy[2 * k + 1]);
    if (k === start) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  }
  ctx.closePath();
}

function drawArchive() {
  const a = state.archive;
  const canvas = $("archive");
  const {ctx, w, h} = setupCanvas(canvas);
  if (!a) return;
  const frame = {x: MARGIN.left, y: MARGIN.top, w: w - MARGIN.left - MARGIN.right,
                 h: h - MARGIN.top - MARGIN.bottom};
  const s = scales(frame, a.xRange, a.yRange, a.yDown);
  a.frame = frame;
  a.scale = s;
  ctx.fillStyle = "#fff";
  ctx.fillRect(frame.x, frame.y, frame.w, frame.h);
  ctx.save();
  ctx.beginPath();
  ctx.rect(frame.x, frame.y, frame.w, frame.h);
  ctx.clip();
  if (a.view === "grid") {
    for (let i = 0; i < a.n; i++) {
      const r = cellRect(a, s, a.index[i]);
      ctx.fillStyle = colourOf(a.fitness[i], a);
      // Rounded outwards by half a pixel: neighbouring cells leave no hairline between them.
      ctx.fillRect(r[0] - 0.25, r[1] - 0.25, r[2] + 0.5, r[3] + 0.5);
    }
  } else if (a.view === "cvt") {
    // One path per colour of the scale (256 fills, not one per cell: 4x faster at 10,000
    // cells), with a rim in that colour over the antialiasing seams between neighbours.
    const byColour = new Map();
    for (let i = 0; i < a.n; i++) {
      const colour = colourOf(a.fitness[i], a);
      if (!byColour.has(colour)) byColour.set(colour, []);
      byColour.get(colour).push(a.index[i]);
    }
    ctx.lineWidth = 0.6;
    for (const [colour, cells] of byColour) {
      ctx.beginPath();
      for (const cell of cells) polygonPath(ctx, a, s, cell);
      ctx.fillStyle = ctx.strokeStyle = colour;
      ctx.fill();
      ctx.stroke();
    }
    // Every cell's edge, as ribs' cvt_archive_heatmap draws them, while cells are large enough
    // for edges not to hide their colour; stroked 64 cells at a time: chromium took 360 ms to
    // stroke 10,000 cells as one path, 7 ms in chunks of 50.
    const pxPerCell = (frame.w * frame.h) / a.nCentroids;
    ctx.strokeStyle = `rgba(0, 0, 0, ${Math.min(0.35, pxPerCell / 400).toFixed(3)})`;
    ctx.lineWidth = 0.4;
    for (let c0 = 0; c0 < a.nCentroids && pxPerCell >= 20; c0 += 64) {
      ctx.beginPath();
      for (let c = c0; c < Math.min(a.nCentroids, c0 + 64); c++) polygonPath(ctx, a, s, c);
      ctx.stroke();
    }
  } else {
    const r = a.n > 2000 ? 2 : 3;
    for (const i of a.order) {  // the fitter drawn last, on top
      ctx.fillStyle = colourOf(a.fitness[i], a);
      ctx.beginPath();
      ctx.arc(s.sx(a.descriptors[0][i]), s.sy(a.yValues[i]), r, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
  drawSelection(ctx, a, s);
  drawMarks(ctx, s);
  ctx.restore();
  drawAxes(ctx, frame, a.xRange, a.yRange, s, a.names[0] || "descriptor 1", a.yName);
  drawColourbar(ctx, frame, a);
  window.__neuroqd.draws.archive++;
}

function drawSelection(ctx, a, s) {
  const sel = state.selected;
  if (!sel || sel.run !== state.current) return;
  const i = a.view === "scatter" ? a.index.indexOf(sel.cell) : a.eliteOf[sel.cell];
  ctx.lineWidth = 2;
  ctx.strokeStyle = "#00d0ff";
  ctx.beginPath();
  if (a.view === "grid") {
    const r = cellRect(a, s, sel.cell);
    ctx.rect(r[0], r[1], Math.max(r[2], 3), Math.max(r[3], 3));
  } else if (a.view === "cvt") {
    polygonPath(ctx, a, s, sel.cell);
  } else if (i >= 0) {
    ctx.arc(s.sx(a.descriptors[0][i]), s.sy(a.yValues[i]), 6, 0, 2 * Math.PI);
  }
  ctx.stroke();
}

function drawMarks(ctx, s) {  // distilled mode: the target asked for and the place reached
  const m = state.marks;
  if (!m || m.run !== state.current) return;
  const [tx, ty] = [s.sx(m.target[0]), s.sy(m.target[1])];
  ctx.lineWidth = 2.5;
  ctx.strokeStyle = "#00d0ff";
  ctx.beginPath();
  ctx.moveTo(tx - 7, ty - 7); ctx.lineTo(tx + 7, ty + 7);
  ctx.moveTo(tx - 7, ty + 7); ctx.lineTo(tx + 7, ty - 7);
  ctx.stroke();
  if (!m.reached) return;
  const [rx, ry] = [s.sx(m.reached[0]), s.sy(m.reached[1])];
  ctx.setLineDash([4, 3]);
  ctx.lineWidth = 1.5;
  ctx.beginPath(); ctx.moveTo(tx, ty); ctx.lineTo(rx, ry); ctx.stroke();
  ctx.setLineDash([]);
  ctx.lineWidth = 2.5;
  ctx.strokeStyle = "#39ff14";
  ctx.beginPath(); ctx.arc(rx, ry, 7, 0, 2 * Math.PI); ctx.stroke();
}

function drawColourbar(ctx, frame, a) {
  const x = frame.x + frame.w + 14, w = 14, n = state.colormap.length;
  for (let k = 0; k < n; k++) {
    ctx.fillStyle = state.colormap[k];
    const y0 = frame.y + frame.h * (1 - (k + 1) / n);
    ctx.fillRect(x, y0, w, frame.h / n + 0.6);
  }
  ctx.strokeStyle = "#444";
  ctx.strokeRect(x, frame.y, w, frame.h);
  ctx.fillStyle = "#333";
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  for (const t of niceTicks(a.vmin, a.vmax, 8)) {
    const y = frame.y + frame.h * (1 - (t - a.vmin) / (a.vmax - a.vmin));
    ctx.fillRect(x + w, y, 3, 1);
    ctx.fillText(fmtTick(t), x + w + 5, y);
  }
}

// The elite under a point of the canvas: {i, cell} (i = -1 for an empty cell), or null.
function hit(px, py) {
  const a = state.archive;
  if (!a || !a.frame) return null;
  const f = a.frame, s = a.scale;
  if (px < f.x || px > f.x + f.w || py < f.y || py > f.y + f.h) return null;
  const dx = s.ix(px), dy = s.iy(py);
  if (a.view === "grid") {
    const [nx, ny] = a.dims;
    const i = Math.min(nx - 1, Math.floor(((dx - a.xRange[0]) / (a.xRange[1] - a.xRange[0])) * nx));
    const j = Math.min(ny - 1, Math.floor(((dy - a.yRange[0]) / (a.yRange[1] - a.yRange[0])) * ny));
    const cell = i * ny + j;
    return {cell, i: a.eliteOf[cell]};
  }
  if (a.view === "cvt") {  // a Voronoi cell is the set of points nearest its centroid
    let best = 0, bestD = Infinity;
    for (let c = 0; c < a.nCentroids; c++) {
      const d = (a.centroids[2 * c] - dx) ** 2 + (a.centroids[2 * c + 1] - dy) ** 2;
      if (d < bestD) { bestD = d; best = c; }
    }
    return {cell: best, i: a.eliteOf[best]};
  }
  let best = -1, bestD = 100;  // scatter: the nearest dot within 10 px
  for (const i of a.order) {
    const d = (s.sx(a.descriptors[0][i]) - px) ** 2 + (s.sy(a.yValues[i]) - py) ** 2;
    if (d <= bestD) { bestD = d; best = i; }
  }
  return best < 0 ? null : {cell: a.index[best], i: best};
}

function descriptorText(a, i, digits = 4) {
  return a.descriptors.map((col, k) => `${a.names[k] || "d" + (k + 1)} ${fmt(col[i], digits)}`).join(", ");
}

function onArchiveMove(event) {
  const tip = $("tooltip");
  const h = hit(event.offsetX, event.offsetY);
  const a = state.archive;
  if (!h || (h.i < 0 && !distilledMode())) { tip.hidden = true; return; }
  if (h.i < 0) {
    tip.textContent = `target ${fmt(a.scale.ix(event.offsetX))}, ${fmt(a.scale.iy(event.offsetY))}`;
  } else {
    tip.textContent = `cell ${h.cell} · fitness ${fmt(a.fitness[h.i])} · ${descriptorText(a, h.i)}`;
  }
  tip.hidden = false;
  const canvas = $("archive");
  tip.style.left = `${Math.min(event.offsetX + 14, canvas.clientWidth - tip.offsetWidth)}px`;
  tip.style.top = `${event.offsetY + 14}px`;
}

function distilledMode() {
  return $("distilled").checked && !$("distilled-mode").hidden;
}

function onArchiveClick(event) {
  const a = state.archive;
  const h = hit(event.offsetX, event.offsetY);
  if (!a || !h) return;
  if (distilledMode()) {
    const b = a.bounds;
    const clamp = (v, r) => Math.max(r[0], Math.min(r[1], v));
    const target = [clamp(a.scale.ix(event.offsetX), b[0]), clamp(a.scale.iy(event.offsetY), b[1])]
      .map((v) => +v.toPrecision(4));
    state.marks = {run: state.current, target, reached: null};
    state.selected = null;
    drawArchive();
    showElite(null, `distilled policy → (${target.map((v) => fmt(v)).join(", ")})`, [
      ["target", target.map((v) => fmt(v)).join(", ")]]);
    requestRender({descriptor: target.join(","), distilled: 1});
    return;
  }
  if (h.i < 0) {
    showElite(null, `cell ${h.cell}`, [["cell", h.cell]], "This cell is empty.");
    return;
  }
  state.selected = {run: state.current, cell: h.cell};
  state.marks = null;
  drawArchive();
  const rows = [["fitness", fmt(a.fitness[h.i], 6)], ["descriptor", descriptorText(a, h.i, 6)],
                ["cell", h.cell]];
  if (a.genome_id) rows.push(["genome id", a.genome_id[h.i]]);
  showElite(h.i, `elite of cell ${h.cell}`, rows);
  requestRender({cell: h.cell});
}

// Where cell ``cell`` is drawn, in CSS pixels from the canvas' top left (tests click there).
function cellPoint(cell) {
  const a = state.archive, s = a.scale;
  if (a.view === "grid") {
    const r = cellRect(a, s, cell);
    return [r[0] + r[2] / 2, r[1] + r[3] / 2];
  }
  if (a.view === "cvt") return [s.sx(a.centroids[2 * cell]), s.sy(a.centroids[2 * cell + 1])];
  const i = a.index.indexOf(cell);
  return [s.sx(a.descriptors[0][i]), s.sy(a.yValues[i])];
}
window.__neuroqd.cellPoint = cellPoint;
window.__neuroqd.state = state;

// -- the elite panel and renders ----------------------------------------------------------

function definitionList(rows) {
  const dl = document.createElement("dl");
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = k;
    dd.textContent = v;
    dl.append(dt, dd);
  }
  return dl;
}

function showElite(i, title, rows, note = "") {
  $("elite-title").textContent = title;
  const el = $("elite");
  el.replaceChildren(definitionList(rows));
  el.dataset.cell = rows.find((r) => r[0] === "cell")?.[1] ?? "";
  if (note) {
    const p = document.createElement("p");
    p.className = "note";
    p.textContent = note;
    el.append(p);
  }
  $("media").replaceChildren();
}

let renderToken = 0;  // a newer click abandons the older render's polling

async function requestRender(params) {
  const token = ++renderToken;
  const run = state.current;
  const url = `/api/runs/${run}/render?${new URLSearchParams(params)}`;
  const media = $("media");
  const note = document.createElement("p");
  note.className = "note";
  note.textContent = "rendering…";
  media.replaceChildren(note);
  while (token === renderToken) {
    let status, body;
    try {
      [status, body] = await getJSON(url);
    } catch (e) {
      if (token === renderToken) { note.textContent = `no render: ${e.message}`; note.className = "error"; }
      return;
    }
    if (token !== renderToken) return;
    if (status === 200) { showRender(body, run); return; }
    note.textContent = `rendering… ${body.elapsed_s} s (MuJoCo videos take a few seconds)`;
    await sleep(RENDER_POLL_MS);
  }
}

function showRender(info, run) {
  const media = $("media");
  let el;
  if (info.kind === "mp4") {
    el = document.createElement("video");
    Object.assign(el, {controls: true, autoplay: true, muted: true, loop: true, playsInline: true});
    el.id = "render-video";
  } else {
    el = document.createElement("img");
    el.alt = "render of the elite";
    el.id = "render-image";
  }
  el.src = info.url;
  const rows = [["replayed fitness", fmt(info.fitness, 6)],
                ["reached descriptor", info.descriptor.map((v) => fmt(v, 6)).join(", ")]];
  if (info.target) rows.push(["target", info.target.map((v) => fmt(v)).join(", ")]);
  if (info.failed) rows.push(["failed", "the rollout failed (non-finite values)"]);
  media.replaceChildren(definitionList(rows), el);
  if (info.target && state.marks && state.marks.run === run) {
    state.marks.reached = info.descriptor;
    if (run === state.current) drawArchive();
  }
}

// -- curves -------------------------------------------------------------------------------

function curveRuns() {
  const all = $("overlay").checked;
  return state.runs.map((r, i) => i).filter((i) => (all || i === state.current) && state.metrics[i]);
}

function drawCurve(canvas, column) {
  const {ctx, w, h} = setupCanvas(canvas);
  const frame = {x: CURVE_MARGIN.left, y: CURVE_MARGIN.top, w: w - CURVE_MARGIN.left - CURVE_MARGIN.right,
                 h: h - CURVE_MARGIN.top - CURVE_MARGIN.bottom};
  ctx.fillStyle = "#333";
  ctx.font = "bold 12px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  ctx.fillText(column ? column.replace(/_/g, " ") : "(no other column)", frame.x + frame.w / 2, 3);
  if (!column) return;
  const runs = curveRuns().filter((i) => state.metrics[i].data[column]);
  let xr = [Infinity, -Infinity], yr = [Infinity, -Infinity];
  for (const i of runs) {
    const m = state.metrics[i];
    const xs = m.data.evaluations || [], ys = m.data[column];
    for (let k = 0; k < m.rows; k++) {
      if (xs[k] === null || ys[k] === null) continue;
      xr = [Math.min(xr[0], xs[k]), Math.max(xr[1], xs[k])];
      yr = [Math.min(yr[0], ys[k]), Math.max(yr[1], ys[k])];
    }
  }
  if (!(xr[1] >= xr[0])) { xr = [0, 1]; yr = [0, 1]; }
  const widen = (r) => (r[1] > r[0] ? r : [r[0] - (Math.abs(r[0]) * 0.05 || 1), r[1] + (Math.abs(r[1]) * 0.05 || 1)]);
  xr = widen(xr);
  yr = widen(yr);
  const pad = (yr[1] - yr[0]) * 0.04;
  yr = [yr[0] - pad, yr[1] + pad];
  const s = scales(frame, xr, yr);
  ctx.strokeStyle = "#eee";
  ctx.lineWidth = 1;
  for (const t of niceTicks(yr[0], yr[1], 4)) {
    ctx.beginPath(); ctx.moveTo(frame.x, s.sy(t)); ctx.lineTo(frame.x + frame.w, s.sy(t)); ctx.stroke();
  }
  // The current run last, thicker, on top of the others.
  for (const i of [...runs.filter((i) => i !== state.current), ...runs.filter((i) => i === state.current)]) {
    const m = state.metrics[i];
    const xs = m.data.evaluations, ys = m.data[column];
    ctx.strokeStyle = state.palette[i % state.palette.length];
    ctx.lineWidth = i === state.current ? 2 : 1.2;
    ctx.beginPath();
    let pen = false;
    for (let k = 0; k < m.rows; k++) {
      if (xs[k] === null || ys[k] === null) { pen = false; continue; }  // a gap, not a zero
      if (pen) ctx.lineTo(s.sx(xs[k]), s.sy(ys[k])); else ctx.moveTo(s.sx(xs[k]), s.sy(ys[k]));
      pen = true;
    }
    if (m.rows === 1 && xs[0] !== null && ys[0] !== null) ctx.arc(s.sx(xs[0]), s.sy(ys[0]), 2, 0, 7);
    ctx.stroke();
  }
  drawAxes(ctx, frame, xr, yr, s, "evaluations", "");
}

function drawCurves() {
  for (const canvas of document.querySelectorAll("canvas.curve[data-column]")) {
    drawCurve(canvas, canvas.dataset.column);
  }
  drawCurve($("other-curve"), $("column").value);
  const legend = $("legend");
  legend.replaceChildren(...curveRuns().map((i) => {
    const span = document.createElement("span");
    span.style.setProperty("--swatch", state.palette[i % state.palette.length]);
    span.textContent = `${i}: ${state.runs[i].name} (${state.metrics[i].rows} rows)`;
    if (i === state.current) span.className = "current";
    return span;
  }));
  window.__neuroqd.draws.curves++;
}

function fillColumnSelect() {
  const select = $("column");
  const names = new Set();
  for (const i of curveRuns()) for (const c of state.metrics[i].columns) if (!NOT_OTHER.has(c)) names.add(c);
  const keep = select.value;
  const wanted = [...names];
  if (wanted.join() === [...select.options].map((o) => o.value).join()) return;
  select.replaceChildren(...wanted.map((c) => new Option(c, c)));
  if (wanted.includes(keep)) select.value = keep;
}

// -- loading ------------------------------------------------------------------------------

async function loadArchive() {
  const run = state.current;
  await once(`archive ${run}`, async () => {
    const [, a] = await getJSON(`/api/runs/${run}/archive`);
    if (run !== state.current) return;
    state.archive = prepareArchive(a);
    const info = state.runs[run];
    const coverage = a.view === "scatter" ? "" : `, coverage ${(100 * a.n / Math.max(a.cells, 1)).toFixed(1)}%`;
    $("archive-title").textContent = `${info.algorithm} on ${info.task}: ${a.n} elites${coverage}` +
      (a.source ? ` (${a.source})` : "");
    $("archive-note").textContent = a.note;
    drawArchive();
  });
}

async function loadMetrics(run) {
  await once(`metrics ${run}`, async () => {
    const [, m] = await getJSON(`/api/runs/${run}/metrics`);
    state.metrics[run] = m;
    window.__neuroqd.rows[run] = m.rows;
    fillColumnSelect();
    drawCurves();
  });
}

async function loadFiles() {
  const run = state.current;
  await once(`files ${run}`, async () => {
    const [, f] = await getJSON(`/api/runs/${run}/files`);
    if (run !== state.current) return;
    state.files = f;
    $("config").textContent = f.config;
    $("summary").textContent = f.summary ? JSON.stringify(f.summary, null, 1) : f.summary_note;
    $("live").hidden = f.summary !== null;
  });
}

function showDistilledSwitch(stamps) {
  const info = state.runs[state.current];
  $("distilled-mode").hidden = !(stamps && stamps.distilled) || info.descriptor_dim !== 2;
}

async function selectRun(run) {
  state.current = run;
  state.archive = null;
  state.files = null;
  renderToken++;
  showElite(null, "elite", [], "Click a filled cell to see its elite and what it does.");
  showDistilledSwitch(state.stamps[run] || state.runs[run].stamps);
  const loads = [loadArchive(), loadFiles()];
  if (!state.metrics[run]) loads.push(loadMetrics(run));
  else { fillColumnSelect(); drawCurves(); }
  await Promise.all(loads);
}

async function poll() {
  try {
    const [, status] = await getJSON("/api/status");
    state.stamps = status.runs;
    const a = state.archive, f = state.files;
    status.runs.forEach((s, i) => {
      const m = state.metrics[i];
      if ((i === state.current || $("overlay").checked) && (!m || m.stamp !== s.metrics)) loadMetrics(i);
    });
    const s = status.runs[state.current];
    if (a && a.stamp !== s.archive) loadArchive();
    if (f && (f.stamp[0] !== s.config || f.stamp[1] !== s.summary)) loadFiles();
    showDistilledSwitch(s);
    if ($("status").classList.contains("error")) setStatus("");
  } catch (e) {
    setStatus(`server unreachable (${e.message}); retrying`, true);
  }
  setTimeout(poll, POLL_MS);
}

async function main() {
  const [, body] = await getJSON("/api/runs");
  Object.assign(state, {runs: body.runs, colormap: body.colormap, palette: body.palette});
  state.stamps = body.runs.map((r) => r.stamps);
  state.metrics = body.runs.map(() => null);
  $("run").replaceChildren(...body.runs.map((r) => new Option(
    `${r.index}: ${r.name} (${r.algorithm} on ${r.task})`, r.index)));
  $("overlay").checked = body.runs.length > 1;
  const others = body.runs.length > 1 ? body.runs.map((r, i) => loadMetrics(i)) : [];
  await Promise.all([selectRun(0), ...others]);
  window.__neuroqd.ready = performance.now();  // ms since navigation started
  document.body.dataset.ready = "1";
  setTimeout(poll, POLL_MS);
}

$("run").addEventListener("change", (e) => selectRun(+e.target.value));
$("overlay").addEventListener("change", () => {
  if ($("overlay").checked) state.runs.forEach((r, i) => { if (!state.metrics[i]) loadMetrics(i); });
  fillColumnSelect();
  drawCurves();
});
$("column").addEventListener("change", drawCurves);
$("archive").addEventListener("mousemove", onArchiveMove);
$("archive").addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
$("archive").addEventListener("click", onArchiveClick);
$("distilled").addEventListener("change", () => { state.marks = null; drawArchive(); });
let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { drawArchive(); drawCurves(); }, 100);
});
main().catch((e) => setStatus(`could not load the runs: ${e.message}`, true));
