// The nabla dashboard page: follows every run the server knows (one event stream
// each), keeps its state as the server describes it (see src/dashboard/state.rs),
// and draws it on canvases. No outside library: a few small chart functions below.
"use strict";

const RUN_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
// TensorFlow Playground's two classes first (orange, blue), then a qualitative palette
const CLASS_COLOURS = [[245, 147, 34], [8, 119, 189], [44, 160, 44], [214, 39, 40], [148, 103, 189],
  [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]];
const POSITIVE = "#0877bd";
const NEGATIVE = "#f59322";

const runs = new Map();      // id → the run's state, as the server sent it
const shown = new Set();     // ids whose curves are drawn
let focus = null;            // the run whose pictures are drawn
let dirty = false;
const replay = { frame: null, following: true, timer: null, shown: false };

const $ = (id) => document.getElementById(id);

// ---- state: the server sends everything first, then only what is new --------

function applyUpdate(update) {
  let run = runs.get(update.id);
  if (!run || update.full) {
    run = { steps: [], metrics: [], warnings: [], histograms: [], regions: [], predictions: [] };
    runs.set(update.id, run);
  }
  for (const [key, value] of Object.entries(update)) {
    if (Array.isArray(run[key]) && Array.isArray(value)) {
      run[key].push(...value);
    } else if (key !== "full") {
      run[key] = value;
    }
  }
  // a page opened after the regions began to form shows them forming from the start
  if (update.full && update.id === focus && run.regions.length > 1 && !replay.shown) {
    replay.shown = true;
    startReplay();
  }
  redrawSoon();
}

function follow(id) {
  const source = new EventSource(`/api/runs/${encodeURIComponent(id)}/events`);
  source.addEventListener("update", (event) => applyUpdate(JSON.parse(event.data)));
  source.onerror = () => setStatusText("connection lost; retrying…", "failed");
}

async function start() {
  const response = await fetch("/api/runs");
  const list = await response.json();
  list.forEach((summary, index) => {
    summary.colour = RUN_COLOURS[index % RUN_COLOURS.length];
    shown.add(summary.id);
    addRunToggle(summary);
    follow(summary.id);
  });
  focus = list.length ? list[0].id : null;
  initStepView(list);
  $("smoothing").addEventListener("input", redrawSoon);
  $("log-loss").addEventListener("change", redrawSoon);
  $("histogram-epoch").addEventListener("input", redrawSoon);
  $("frame").addEventListener("input", () => {
    replay.following = false;
    stopReplay();
    replay.frame = Number($("frame").value);
    redrawSoon();
  });
  $("play").addEventListener("click", startReplay);
  window.addEventListener("resize", redrawSoon);
}

function addRunToggle(summary) {
  const label = document.createElement("label");
  const box = document.createElement("input");
  box.type = "checkbox";
  box.checked = true;
  box.addEventListener("change", () => {
    if (box.checked) shown.add(summary.id); else shown.delete(summary.id);
    redrawSoon();
  });
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = summary.colour;
  const name = document.createElement("span");
  name.textContent = summary.id;
  name.title = `${summary.path} — click to show its pictures`;
  name.addEventListener("click", (event) => { event.preventDefault(); focus = summary.id; replay.following = true; redrawSoon(); });
  label.append(box, swatch, name);
  $("runs").append(label);
  colours.set(summary.id, summary.colour);
}
const colours = new Map();

function redrawSoon() {
  if (!dirty) {
    dirty = true;
    requestAnimationFrame(() => { dirty = false; redraw(); });
  }
}

function redraw() {
  const run = runs.get(focus);
  drawStatus(run);
  drawCurves();
  if (!run) return;
  drawRegions(run);
  drawNetwork(run);
  drawHealth(run);
  drawHistograms(run);
  drawImages(run);
  $("config").textContent = run.config || "";
}

function setStatusText(text, kind) {
  $("status").textContent = text;
  $("status").className = kind || "";
}

function drawStatus(run) {
  if (!run) return setStatusText(runs.size ? "" : "waiting for the server…");
  const done = run.metrics.length;
  const last = run.metrics[done - 1];
  const accuracy = last && last.test_accuracy != null ? `, test accuracy ${(100 * last.test_accuracy).toFixed(2)}%` : "";
  const loss = last && last.test_loss != null ? `, test loss ${last.test_loss.toFixed(4)}` : "";
  const lastStep = run.steps[run.steps.length - 1];
  const where = lastStep ? `epoch ${Math.min(Math.ceil(lastStep.epoch), run.epochs)} of ${run.epochs}` : `${done} of ${run.epochs} epochs`;
  const words = {
    running: `${run.id}: training — ${where}${loss}${accuracy}`,
    // a config explained, not trained, says so (its message)
    finished: run.epochs === 0 && run.message ? `${run.id}: ${run.message}` : `${run.id}: finished ${done} epochs${loss}${accuracy}`,
    interrupted: `${run.id}: ${run.message || "interrupted"}`,
    failed: `${run.id}: failed — ${run.message || ""}`,
  };
  setStatusText(words[run.status] || run.status, run.status);
}

// ---- charts -----------------------------------------------------------------

// Round tick positions covering [lo, hi]: steps of 1, 2 or 5 × 10ⁿ.
function ticks(lo, hi, count) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

function formatTick(value) {
  if (value === 0) return "0";
  const size = Math.abs(value);
  if (size >= 1e4 || size < 1e-3) return value.toExponential(0);
  return String(Number(value.toPrecision(4)));
}

// Prepares a canvas for crisp drawing at the device's pixel ratio; returns its context and size.
function surface(canvas) {
  const ratio = window.devicePixelRatio || 1;
  // the height in CSS pixels is the one the page declared; the bitmap is scaled by the ratio
  if (!canvas.dataset.height) canvas.dataset.height = canvas.getAttribute("height");
  const height = Number(canvas.dataset.height);
  canvas.style.height = `${height}px`;
  const width = canvas.clientWidth || canvas.width;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  return { context, width, height };
}

// [min, max] of many values: a loop, because Math.min(...values) passes each value as an
// argument and overflows the call stack past ~100 k of them (a long run's step points).
function extent(values) {
  let [low, high] = [Infinity, -Infinity];
  for (const v of values) {
    if (v < low) low = v;
    if (v > high) high = v;
  }
  return [low, high];
}

// A line chart: series = [{points: [[x, y]…], colour, width, alpha, dash, dots, hollow}].
// Records how many points it drew in the canvas's data-points attribute.
function lineChart(canvas, series, { xLabel = "epoch", logY = false, yRange = null } = {}) {
  const { context: c, width, height } = surface(canvas);
  const margin = { left: 68, right: 12, top: 10, bottom: 34 };
  const y = (v) => (logY ? Math.log10(v) : v);
  const points = series.flatMap((s) => s.points).filter(([px, py]) => Number.isFinite(px) && Number.isFinite(y(py)));
  canvas.dataset.points = String(points.length);
  if (!points.length) {
    c.fillStyle = "#6b7785";
    c.fillText("no data yet", width / 2 - 25, height / 2);
    return;
  }
  let [x0, x1] = extent(points.map((p) => p[0]));
  let [y0, y1] = yRange || extent(points.map((p) => y(p[1])));
  if (x1 === x0) { x0 -= 0.5; x1 += 0.5; }
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const pad = (y1 - y0) * 0.05;
  if (!yRange) { y0 -= pad; y1 += pad; }
  const px = (v) => margin.left + ((v - x0) / (x1 - x0)) * (width - margin.left - margin.right);
  const py = (v) => height - margin.bottom - ((y(v) - y0) / (y1 - y0)) * (height - margin.top - margin.bottom);

  c.font = "11px system-ui, sans-serif";
  c.strokeStyle = "#dde3ea";
  c.fillStyle = "#6b7785";
  c.lineWidth = 1;
  c.textAlign = "right";
  for (const t of logY ? ticks(Math.floor(y0), Math.ceil(y1), 5).filter((t) => Number.isInteger(t)) : ticks(y0, y1, 5)) {
    if (t < y0 || t > y1) continue;
    const at = height - margin.bottom - ((t - y0) / (y1 - y0)) * (height - margin.top - margin.bottom);
    c.beginPath(); c.moveTo(margin.left, at); c.lineTo(width - margin.right, at); c.stroke();
    c.fillText(logY ? formatTick(Math.pow(10, t)) : formatTick(t), margin.left - 6, at + 4);
  }
  c.textAlign = "center";
  // whole epochs when there are few enough, else round steps of them
  const xTicks = ticks(x0, x1, 8).filter((t) => x1 - x0 < 2 || Number.isInteger(t));
  for (const t of xTicks) {
    c.beginPath(); c.moveTo(px(t), height - margin.bottom); c.lineTo(px(t), height - margin.bottom + 4); c.stroke();
    c.fillText(formatTick(t), px(t), height - margin.bottom + 16);
  }
  c.fillText(xLabel, (margin.left + width - margin.right) / 2, height - 4);
  c.strokeStyle = "#9aa5b1";
  c.beginPath(); c.moveTo(margin.left, margin.top); c.lineTo(margin.left, height - margin.bottom); c.lineTo(width - margin.right, height - margin.bottom); c.stroke();

  c.save();
  c.beginPath(); c.rect(margin.left, margin.top - 2, width - margin.left - margin.right + 2, height - margin.top - margin.bottom + 4); c.clip();
  for (const s of series) {
    const valid = s.points.filter(([a, b]) => Number.isFinite(a) && Number.isFinite(y(b)));
    c.globalAlpha = s.alpha ?? 1;
    c.strokeStyle = s.colour;
    c.fillStyle = s.colour;
    c.lineWidth = s.width ?? 1.5;
    c.setLineDash(s.dash || []);
    if (!s.dots) {
      c.beginPath();
      valid.forEach(([a, b], i) => (i ? c.lineTo(px(a), py(b)) : c.moveTo(px(a), py(b))));
      c.stroke();
    } else {
      for (const [a, b] of valid) {
        c.beginPath(); c.arc(px(a), py(b), 3, 0, 2 * Math.PI);
        if (s.hollow) { c.fillStyle = "#fff"; c.fill(); c.stroke(); } else c.fill();
      }
    }
  }
  c.restore();
  c.globalAlpha = 1;
  c.setLineDash([]);
}

// Exponential moving average with TensorBoard's debiasing, so the start is not pulled to 0.
function smooth(values, weight) {
  let last = 0;
  return values.map((v, i) => {
    last = last * weight + (1 - weight) * v;
    return last / (1 - Math.pow(weight, i + 1));
  });
}

function drawCurves() {
  const weight = Number($("smoothing").value);
  const loss = [], accuracy = [], lr = [];
  for (const [id, run] of runs) {
    if (!shown.has(id)) continue;
    const colour = colours.get(id) || RUN_COLOURS[0];
    const steps = run.steps;
    const epochs = run.metrics;
    const stepX = steps.map((s) => s.epoch);
    if (steps.length) {
      const smoothLoss = smooth(steps.map((s) => s.loss), weight);
      const smoothAccuracy = smooth(steps.map((s) => s.accuracy), weight);
      loss.push({ points: steps.map((s, i) => [stepX[i], s.loss]), colour, alpha: 0.2, width: 1 });
      loss.push({ points: smoothLoss.map((v, i) => [stepX[i], v]), colour, width: 2 });
      accuracy.push({ points: smoothAccuracy.map((v, i) => [stepX[i], v]), colour, width: 2 });
      lr.push({ points: steps.map((s) => [s.epoch, s.lr]), colour, width: 2 });
    } else {
      lr.push({ points: epochs.map((m) => [m.epoch, m.lr]), colour, width: 2 });
    }
    // a dot per epoch while they can be told apart, then lines (test dashed)
    const dots = epochs.length <= 60;
    const perEpoch = (key, test) => ({
      points: epochs.filter((m) => m[key] != null).map((m) => [m.epoch, m[key]]),
      colour, dots, hollow: test, dash: test && !dots ? [5, 3] : [], width: 1.5,
    });
    loss.push(perEpoch("train_loss", false), perEpoch("test_loss", true));
    accuracy.push(perEpoch("train_accuracy", false), perEpoch("test_accuracy", true));
  }
  lineChart($("loss"), loss, { logY: $("log-loss").checked });
  lineChart($("accuracy"), accuracy, { yRange: null });
  lineChart($("lr"), lr);
}

// ---- decision regions ---------------------------------------------------------

function startReplay() {
  const run = runs.get(focus);
  if (!run || !run.regions.length) return;
  stopReplay();
  replay.following = false;
  replay.frame = 0;
  // five seconds from the first frame to the newest (a live run's newest moves on
  // meanwhile), redrawing only this picture, then following the run
  const started = performance.now();
  replay.timer = setInterval(() => {
    const run = runs.get(focus);
    const progress = (performance.now() - started) / 5000;
    if (progress >= 1) {
      stopReplay();
      replay.following = true;
      redrawSoon();
      return;
    }
    replay.frame = Math.floor(progress * (run.regions.length - 1));
    drawRegions(run);
  }, 33);
  redrawSoon();
}

function stopReplay() {
  clearInterval(replay.timer);
  replay.timer = null;
}

function drawRegions(run) {
  const card = $("regions-card");
  card.hidden = !run.plane;
  if (!run.plane || !run.regions.length) return;
  const last = run.regions.length - 1;
  if (replay.following || replay.frame == null) replay.frame = last;
  replay.frame = Math.min(replay.frame, last);
  const frame = run.regions[replay.frame];
  $("frame").max = String(last);
  $("frame").value = String(replay.frame);
  $("frame-label").textContent = `epoch ${frame.epoch.toFixed(frame.epoch % 1 ? 2 : 0)}`;

  const canvas = $("regions");
  const { context: c, width, height } = surface(canvas);
  const cells = document.createElement("canvas");
  cells.width = cells.height = frame.size;
  const image = cells.getContext("2d").createImageData(frame.size, frame.size);
  frame.classes.forEach((cls, i) => {
    const [r, g, b] = CLASS_COLOURS[cls % CLASS_COLOURS.length];
    // from white (unsure) to the class colour (sure), as the Playground fades its background
    const strength = 0.15 + 0.6 * Math.max(0, (frame.confidence[i] / 255 - 0.5) * 2);
    image.data.set([255 + (r - 255) * strength, 255 + (g - 255) * strength, 255 + (b - 255) * strength, 255], 4 * i);
  });
  cells.getContext("2d").putImageData(image, 0, 0);
  c.imageSmoothingEnabled = true;
  c.drawImage(cells, 0, 0, width, height);
  canvas.dataset.frame = String(replay.frame);
  canvas.dataset.frames = String(run.regions.length);

  const [x0, x1, y0, y1] = run.plane.extent;
  const px = (x) => ((x - x0) / (x1 - x0)) * width;
  const py = (y) => height - ((y - y0) / (y1 - y0)) * height;
  run.plane.xy.forEach(([x, y], i) => {
    const [r, g, b] = CLASS_COLOURS[run.plane.labels[i] % CLASS_COLOURS.length];
    c.beginPath();
    c.arc(px(x), py(y), 3, 0, 2 * Math.PI);
    c.fillStyle = `rgb(${r},${g},${b})`;
    c.fill();
    c.lineWidth = run.plane.test[i] ? 1.5 : 0.6;
    c.strokeStyle = run.plane.test[i] ? "#000" : "#fff";
    c.stroke();
  });
}

// ---- the network --------------------------------------------------------------

function drawNetwork(run) {
  const canvas = $("network");
  const network = run.network;
  if (!network) return;
  const { context: c, width, height } = surface(canvas);
  c.font = "11px system-ui, sans-serif";
  c.textAlign = "center";
  const dense = network.layers.filter((l) => l.dense);
  const isMlp = dense.length > 0 && network.layers.every((l) => l.dense || l.parameters === 0);
  $("network-hint").textContent = isMlp
    ? `epoch ${network.epoch}: layers and connections; line width: |weight|, blue positive, orange negative` + (dense.some((l) => l.dense.shown_inputs < l.dense.inputs || l.dense.shown_outputs < l.dense.outputs) ? " (wide layers: their first 64 units)" : "")
    : "the layers and the shape of what each one outputs, for one sample";
  if (isMlp) drawMlp(c, width, height, network); else drawLayerBoxes(c, width, height, network);
}

function drawMlp(c, width, height, network) {
  // a column of units for the input and for each linear layer's outputs; the activation
  // that follows a linear layer is written under its column
  const columns = [{ units: network.layers[0].dense.shown_inputs, total: network.layers[0].dense.inputs, label: "input" }];
  const links = [];
  network.layers.forEach((layer) => {
    if (layer.dense) {
      links.push(layer.dense);
      columns.push({ units: layer.dense.shown_outputs, total: layer.dense.outputs, label: layer.description.replace(/\(.*/, "") });
    } else {
      columns[columns.length - 1].label += ` → ${layer.description.replace(/\(.*/, "")}`;
    }
  });
  const x = (i) => 60 + (i * (width - 120)) / Math.max(1, columns.length - 1);
  const y = (column, j) => 20 + ((j + 0.5) * (height - 60)) / column.units;
  links.forEach((weights, i) => {
    const largest = Math.max(1e-12, ...weights.values.map(Math.abs));
    for (let o = 0; o < weights.shown_outputs; o++) {
      for (let k = 0; k < weights.shown_inputs; k++) {
        const w = weights.values[o * weights.shown_inputs + k];
        const size = Math.abs(w) / largest;
        if (size < 0.02) continue;
        c.globalAlpha = 0.15 + 0.6 * size;
        c.strokeStyle = w > 0 ? POSITIVE : NEGATIVE;
        c.lineWidth = 0.3 + 3 * size;
        c.beginPath();
        c.moveTo(x(i), y(columns[i], k));
        c.lineTo(x(i + 1), y(columns[i + 1], o));
        c.stroke();
      }
    }
  });
  c.globalAlpha = 1;
  columns.forEach((column, i) => {
    const radius = Math.max(1.5, Math.min(6, (height - 60) / column.units / 2.5));
    for (let j = 0; j < column.units; j++) {
      c.beginPath();
      c.arc(x(i), y(column, j), radius, 0, 2 * Math.PI);
      c.fillStyle = "#fff";
      c.fill();
      c.strokeStyle = "#52606d";
      c.lineWidth = radius > 2 ? 1 : 0.5;
      c.stroke();
    }
    c.fillStyle = "#1d2733";
    const more = column.total > column.units ? ` (+${column.total - column.units})` : "";
    c.fillText(`${column.label}: ${column.total}${more}`, x(i), height - 20);
  });
}

function drawLayerBoxes(c, width, height, network) {
  const boxes = [{ description: "input", output_shape: network.input_shape, parameters: 0 }, ...network.layers];
  const perRow = Math.max(1, Math.floor((width - 20) / 130));
  const rows = Math.ceil(boxes.length / perRow);
  const boxHeight = Math.min(64, (height - 20) / rows - 12);
  boxes.forEach((layer, i) => {
    const [row, col] = [Math.floor(i / perRow), i % perRow];
    const [bx, by] = [10 + col * 130, 10 + row * (boxHeight + 12)];
    c.fillStyle = layer.parameters ? "#e3eef9" : "#f1f3f5";
    c.strokeStyle = "#9aa5b1";
    c.fillRect(bx, by, 118, boxHeight);
    c.strokeRect(bx, by, 118, boxHeight);
    c.fillStyle = "#1d2733";
    c.fillText(layer.description.replace(/\(.*/, "").slice(0, 18), bx + 59, by + 16);
    c.fillStyle = "#6b7785";
    c.fillText(`[${layer.output_shape.join("×")}]`, bx + 59, by + 31);
    if (layer.parameters) c.fillText(`${layer.parameters.toLocaleString()} params`, bx + 59, by + 46);
    if (col < perRow - 1 && i < boxes.length - 1) {
      c.beginPath(); c.moveTo(bx + 118, by + boxHeight / 2); c.lineTo(bx + 130, by + boxHeight / 2); c.stroke();
    }
  });
}

// ---- gradient health and histograms ----------------------------------------------

function drawHealth(run) {
  const names = [...new Set(run.metrics.flatMap((m) => Object.keys(m.grad_norm || {})))];
  const series = names.map((name, i) => ({
    points: run.metrics.filter((m) => m.grad_norm && m.grad_norm[name] > 0).map((m) => [m.epoch, m.grad_norm[name]]),
    colour: RUN_COLOURS[i % RUN_COLOURS.length],
    width: name.endsWith("bias") ? 1 : 2,
    dash: name.endsWith("bias") ? [4, 3] : [],
  }));
  lineChart($("grad-norms"), series, { logY: true });
  const legend = names.map((name, i) => `<span class="swatch" data-colour="${i}"></span>${escapeHtml(name)}`).join("  ");
  const last = run.metrics[run.metrics.length - 1];
  const dead = last && last.dead_relu_fraction && Object.keys(last.dead_relu_fraction).length
    ? "<br>dead ReLUs at the last epoch: " + Object.entries(last.dead_relu_fraction).map(([layer, f]) => `after layer ${escapeHtml(layer)}: ${(100 * f).toFixed(0)}%`).join(", ")
    : "";
  $("dead-relu").innerHTML = legend + dead;
  document.querySelectorAll("#dead-relu .swatch").forEach((s) => { s.style.background = RUN_COLOURS[Number(s.dataset.colour) % RUN_COLOURS.length]; });
  const list = $("warnings");
  list.replaceChildren(...run.warnings.slice(-8).map(([epoch, text]) => {
    const item = document.createElement("li");
    item.textContent = `epoch ${epoch}: ${text}`;
    return item;
  }));
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function drawHistograms(run) {
  const slider = $("histogram-epoch");
  const count = run.histograms.length;
  if (!count) return;
  const following = Number(slider.value) >= Number(slider.max);
  slider.max = String(count - 1);
  if (following) slider.value = String(count - 1);
  const epoch = run.histograms[Number(slider.value)];
  $("histogram-label").textContent = String(epoch.epoch);
  const box = $("histograms");
  if (box.children.length !== epoch.parameters.length) {
    box.replaceChildren(...epoch.parameters.map(() => {
      const figure = document.createElement("div");
      figure.className = "histogram";
      const title = document.createElement("div");
      const canvas = document.createElement("canvas");
      canvas.width = 220;
      canvas.setAttribute("height", "90");
      figure.append(title, canvas);
      return figure;
    }));
  }
  epoch.parameters.forEach((parameter, i) => {
    const [title, canvas] = box.children[i].children;
    title.textContent = `${parameter.name}  [${formatTick(parameter.weights.min)}, ${formatTick(parameter.weights.max)}]`;
    const { context: c, width, height } = surface(canvas);
    const half = parameter.gradients ? height / 2 : height;
    bars(c, parameter.weights.counts, 0, width, half, POSITIVE);
    if (parameter.gradients) bars(c, parameter.gradients.counts, half, width, half, NEGATIVE);
  });
}

function bars(c, counts, top, width, height, colour) {
  const most = Math.max(1, ...counts);
  const barWidth = width / counts.length;
  c.fillStyle = colour;
  counts.forEach((n, i) => {
    const h = (n / most) * (height - 4);
    c.fillRect(i * barWidth + 0.5, top + height - h, barWidth - 1, h);
  });
}

// ---- test images ------------------------------------------------------------------

function drawImages(run) {
  const card = $("images-card");
  card.hidden = !run.images;
  if (!run.images) return;
  const images = run.images;
  const latest = run.predictions[run.predictions.length - 1];
  const order = images.labels.map((_, i) => i);
  const predicted = latest ? latest.predicted : null;
  if (predicted) order.sort((a, b) => Number(predicted[b] !== images.labels[b]) - Number(predicted[a] !== images.labels[a]) || a - b);
  const mistakes = predicted ? images.labels.filter((label, i) => predicted[i] !== label).length : 0;
  $("images-hint").textContent = latest
    ? `after epoch ${latest.epoch}: ${mistakes} of the first ${images.labels.length} test images wrong — predicted / true class, mistakes first`
    : "the first test images (predictions after the first epoch)";
  const name = (k) => images.class_names[k] ?? String(k);
  const shownCount = Math.min(48, order.length);
  const box = $("images");
  const [channels, h, w] = images.shape;
  box.replaceChildren(...order.slice(0, shownCount).map((i) => {
    const figure = document.createElement("div");
    const wrong = predicted && predicted[i] !== images.labels[i];
    figure.className = wrong ? "sample mistake" : "sample";
    const canvas = document.createElement("canvas");
    canvas.width = w; canvas.height = h;
    canvas.style.width = `${Math.max(56, w * 2)}px`;
    const image = canvas.getContext("2d").createImageData(w, h);
    const pixels = images.pixels[i];
    for (let p = 0; p < w * h; p++) {
      const [r, g, b] = channels === 3 ? [pixels[p], pixels[h * w + p], pixels[2 * h * w + p]] : [pixels[p], pixels[p], pixels[p]];
      image.data.set([r, g, b, 255], 4 * p);
    }
    canvas.getContext("2d").putImageData(image, 0, 0);
    const caption = document.createElement("div");
    caption.textContent = predicted ? `${name(predicted[i])} / ${name(images.labels[i])}` : name(images.labels[i]);
    figure.append(canvas, caption);
    return figure;
  }));
}

start().catch((error) => setStatusText(`could not reach the server: ${error}`, "failed"));
