// The step view: one training step of a run's model on one example, node by node —
// forward through the graph nabla recorded, the loss, backward from the loss to the
// input, the optimizer's update. Every number comes from the server's trace
// (src/explain/), the same that `nabla explain CONFIG --sample N` prints.
// Keys: → next, ← back. The URL (#step/RUN/SAMPLE/STAGE/NODE) names the moment.
"use strict";

const step = {
  run: null,          // the run explained
  sample: 0,
  trace: null,        // the overview (src/explain/mod.rs StepTrace, without values)
  checks: null,       // name → the finite-difference checks of that parameter
  details: new Map(), // node → the node in full (values, pictures)
  sequence: [],       // every moment: {stage, node}
  position: 0,
  expanded: new Set(),
  weight: null,       // the MLP weight whose derivation is shown: {layer, row, col}
};
const STAGES = ["forward", "loss", "backward", "update"];

function initStepView(list) {
  const explained = list.filter((run) => run.step_view);
  if (!explained.length) return;
  $("step-card").hidden = false;
  // a config explained, not trained (`nabla explain CONFIG --dashboard`): nothing to chart
  if (list.every((run) => run.step_view && run.status === "finished" && run.epochs === 0)) {
    document.querySelectorAll("main > section.card:not(#step-card)").forEach((card) => { card.hidden = true; });
  }
  const wanted = parseStepHash();
  step.run = wanted && explained.some((r) => r.id === wanted.run) ? wanted.run : explained[0].id;
  $("step-sample").addEventListener("change", () => loadStep(Number($("step-sample").value) || 0));
  $("step-prev").addEventListener("click", () => moveStep(-1));
  $("step-next").addEventListener("click", () => moveStep(1));
  document.querySelectorAll("#step-stages button").forEach((button) =>
    button.addEventListener("click", () => jumpToStage(button.dataset.stage)));
  document.addEventListener("keydown", (event) => {
    if (!step.trace || event.target.tagName === "INPUT") return;
    if (event.key === "ArrowRight") { moveStep(1); event.preventDefault(); }
    if (event.key === "ArrowLeft") { moveStep(-1); event.preventDefault(); }
  });
  $("step-network").addEventListener("click", clickNetwork);
  loadStep(wanted ? wanted.sample : 0, wanted).then(() => {
    if (wanted) $("step-card").scrollIntoView();
  });
}

// #step/RUN/SAMPLE/STAGE/NODE
function parseStepHash() {
  const parts = decodeURIComponent(location.hash.slice(1)).split("/");
  if (parts[0] !== "step" || parts.length < 2) return null;
  return { run: parts[1], sample: Number(parts[2]) || 0, stage: parts[3] || "forward", node: parts[4] === undefined ? null : Number(parts[4]) };
}

async function fetchJson(url) {
  const response = await fetch(url);
  const body = await response.text();
  if (!response.ok) throw new Error(body.trim() || response.statusText);
  return JSON.parse(body);
}

const stepUrl = (path, query) => `/api/runs/${encodeURIComponent(step.run)}/step${path}?sample=${step.sample}${query || ""}`;

async function loadStep(sample, at) {
  step.sample = sample;
  $("step-sample").value = sample;
  $("step-title").textContent = "tracing one training step…";
  $("step-error").textContent = "";
  const started = performance.now();
  try {
    step.trace = await fetchJson(stepUrl(""));
  } catch (error) {
    step.trace = null;
    $("step-title").textContent = "";
    $("step-error").textContent = error.message;
    return;
  }
  $("step-card").dataset.loadMs = String(Math.round(performance.now() - started));
  step.details.clear();
  step.checks = null;
  step.weight = null;
  const trace = step.trace;
  step.sequence = [
    ...trace.nodes.map((node) => ({ stage: "forward", node: node.index })),
    { stage: "loss", node: trace.loss.node },
    ...trace.nodes.slice().reverse().map((node) => ({ stage: "backward", node: node.index })),
    { stage: "update", node: null },
  ];
  // a small graph is shown whole; a larger one (a GPT's) by layer, each opened on demand
  step.expanded = new Set(trace.nodes.length <= 60 ? ["input", "loss", ...trace.layers.map((l) => String(l.index))] : []);
  $("step-title").textContent = `${trace.title}; ${trace.nodes.length} nodes in ${trace.layers.length} layers` +
    (trace.examples ? ` (examples 0 to ${trace.examples - 1})` : "");
  $("step-sample").max = trace.examples ? trace.examples - 1 : "";
  let position = 0;
  if (at) {
    const found = step.sequence.findIndex((m) => m.stage === at.stage && (at.node === null || m.node === at.node));
    position = Math.max(0, found);
  }
  showStep(position);
  fetchJson(stepUrl("/checks")).then((answer) => {
    step.checks = new Map(answer.parameters.map((p) => [p.name, p]));
    showStep(step.position);
  }).catch((error) => { $("step-error").textContent = error.message; });
  if (isMlp(trace)) drawStepNetwork();
}

function moveStep(delta) {
  showStep(Math.min(step.sequence.length - 1, Math.max(0, step.position + delta)));
}

function jumpToStage(stage) {
  const found = step.sequence.findIndex((m) => m.stage === stage);
  if (found >= 0) showStep(found);
}

function jumpToNode(node) {
  const stage = step.sequence[step.position].stage === "backward" ? "backward" : "forward";
  showStep(step.sequence.findIndex((m) => m.stage === stage && m.node === node));
}

function showStep(position) {
  if (!step.trace) return;
  step.position = position;
  const moment = step.sequence[position];
  const hash = `#step/${encodeURIComponent(step.run)}/${step.sample}/${moment.stage}` + (moment.node === null ? "" : `/${moment.node}`);
  history.replaceState(null, "", hash);
  $("step-card").dataset.stage = moment.stage;
  $("step-card").dataset.node = moment.node === null ? "" : String(moment.node);
  document.querySelectorAll("#step-stages button").forEach((b) => b.classList.toggle("current", b.dataset.stage === moment.stage));
  const inStage = step.sequence.filter((m) => m.stage === moment.stage);
  const index = inStage.findIndex((m) => m.node === moment.node);
  $("step-where").textContent = `${moment.stage}: ${index + 1} of ${inStage.length}`;
  const node = moment.node === null ? null : step.trace.nodes[moment.node];
  if (node) {
    const group = groupOf(node);
    step.expanded.add(group);
  }
  drawStepGraph(moment);
  const detail = $("step-detail");
  detail.innerHTML = "";
  ({ forward: showForward, loss: showLoss, backward: showBackward, update: showUpdate })[moment.stage](detail, node);
  if (isMlp(step.trace)) drawStepNetwork();
}

const groupOf = (node) => node.layer === null ? (node.op === "input" ? "input" : "loss") : String(node.layer);

// ---- the graph, grouped by layer ----------------------------------------------

function drawStepGraph(moment) {
  const trace = step.trace;
  const list = $("step-graph");
  list.innerHTML = "";
  const groups = [{ key: "input", title: "the example", nodes: trace.nodes.filter((n) => groupOf(n) === "input") }];
  trace.layers.forEach((layer) => groups.push({ key: String(layer.index), title: `layer ${layer.index}: ${layer.description}`, nodes: layer.nodes.map((i) => trace.nodes[i]) }));
  groups.push({ key: "loss", title: "the loss", nodes: trace.nodes.filter((n) => groupOf(n) === "loss") });
  for (const group of groups) {
    if (!group.nodes.length) continue;
    const open = step.expanded.has(group.key);
    const header = document.createElement("div");
    header.className = "step-group";
    header.dataset.group = group.key;
    header.textContent = `${open ? "▾" : "▸"} ${group.title} (${group.nodes.length})`;
    header.addEventListener("click", () => {
      if (open) step.expanded.delete(group.key); else step.expanded.add(group.key);
      drawStepGraph(step.sequence[step.position]);
    });
    list.appendChild(header);
    if (!open) continue;
    for (const node of group.nodes) {
      const row = document.createElement("div");
      row.className = "step-node" + (node.index === moment.node ? " current" : "");
      row.dataset.node = String(node.index);
      row.textContent = `${node.index}  ${node.name || node.op}  [${node.value.shape.join("×")}]`;
      row.addEventListener("click", () => jumpToNode(node.index));
      list.appendChild(row);
      if (node.index === moment.node) row.scrollIntoView({ block: "nearest" });
    }
  }
}

// ---- what each moment shows ---------------------------------------------------

function element(tag, className, text, id) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== undefined) made.textContent = text;
  if (id) made.id = id;
  return made;
}

function nodeName(node) {
  if (node.name) return `${node.name} (a parameter)`;
  if (node.op === "input") return "the example";
  return `node ${node.index}: ${node.op}`;
}

function heading(detail, node, what) {
  const layer = node.layer === null ? "" : ` — layer ${node.layer}: ${step.trace.layers[node.layer].description}`;
  detail.appendChild(element("h3", "", `${what} · ${nodeName(node)}${layer}`, "step-op"));
}

function showForward(detail, node) {
  heading(detail, node, "Forward");
  const formula = node.rule ? node.rule.forward
    : node.op === "input" ? "x: the example, as the model reads it"
      : node.name ? `${node.name}: a weight the optimizer learns`
        : "a constant of the layer (batch norm's running statistics): used, not learned";
  detail.appendChild(element("p", "formula", formula, "step-formula"));
  if (node.inputs.length) {
    const from = element("p", "hint", "from: ");
    node.inputs.forEach((input, k) => {
      const link = element("a", "", nodeName(step.trace.nodes[input]));
      link.href = "#";
      link.addEventListener("click", (event) => { event.preventDefault(); jumpToNode(input); });
      if (k) from.appendChild(document.createTextNode(", "));
      from.appendChild(link);
    });
    detail.appendChild(from);
  }
  detail.appendChild(element("p", "numbers", `value ${node.value.text}`, "step-value"));
  showValues(detail, node, "value");
}

function showLoss(detail) {
  const trace = step.trace;
  detail.appendChild(element("h3", "", "Loss · the prediction against the target", "step-op"));
  detail.appendChild(element("p", "formula", "L = −log softmax(z)_y, the cross-entropy of the logits z and the target y", "step-formula"));
  detail.appendChild(element("p", "numbers", trace.loss.text, "step-loss"));
  const p = trace.loss.probabilities;
  if (p) {
    const table = element("table", "probabilities");
    p.forEach((value, k) => {
      const row = element("tr", k === trace.loss.labels[0] ? "target" : "");
      row.appendChild(element("td", "", `class ${k}`));
      const bar = element("td");
      bar.appendChild(element("span", "bar")).style.width = `${Math.round(200 * value)}px`;
      row.appendChild(bar);
      row.appendChild(element("td", "", value.toFixed(6)));
      table.appendChild(row);
    });
    detail.appendChild(table);
  }
  detail.appendChild(element("p", "hint", "Backward starts here: dL/dz = softmax(z) − onehot(y), the fused cross-entropy's rule. Press → to follow the gradient back."));
}

function showBackward(detail, node) {
  heading(detail, node, "Backward");
  const rule = node.rule ? node.rule.backward
    : node.op === "input" ? "the gradient has reached the example: dL/dx says how each input value moves the loss"
      : node.name ? `the gradient of the loss with respect to ${node.name}, summed over every use`
        : "a constant: no gradient is wanted here";
  detail.appendChild(element("p", "formula", rule, "step-rule"));
  detail.appendChild(element("p", "numbers", `G = dL/d(this) ${node.grad ? node.grad.text : "(no gradient flows here)"}`, "step-grad"));
  if (node.inputs.length) {
    const out = element("ul", "numbers", undefined, "step-outgoing");
    node.inputs.forEach((input) => {
      const target = step.trace.nodes[input];
      out.appendChild(element("li", "", `→ ${nodeName(target)}: ${target.grad ? target.grad.text : "no gradient (a constant)"}`));
    });
    detail.appendChild(element("p", "hint", "passed on to its inputs:"));
    detail.appendChild(out);
  }
  if (node.name) showChecks(detail, node);
  showValues(detail, node, "grad");
}

function showChecks(detail, node) {
  const checks = step.checks && step.checks.get(node.name);
  if (!checks) {
    detail.appendChild(element("p", "hint", "checking against finite differences…", "step-checks"));
    return;
  }
  const table = element("table", "numbers", undefined, "step-checks");
  table.appendChild(rowOf(["entry", "dL/dw (backprop)", "(L(w+ε) − L(w−ε))/2ε"], "th"));
  checks.checks.forEach((c) => table.appendChild(rowOf([c.index, c.analytic.toExponential(6), c.numerical.toExponential(6)])));
  detail.appendChild(table);
  detail.appendChild(element("p", "hint", `worst relative difference ${checks.worst.toExponential(1)}`));
}

function rowOf(cells, tag = "td") {
  const row = document.createElement("tr");
  cells.forEach((cell) => row.appendChild(element(tag, "", String(cell))));
  return row;
}

function showUpdate(detail) {
  const update = step.trace.update;
  detail.appendChild(element("h3", "", "Update · the optimizer moves every weight", "step-op"));
  detail.appendChild(element("p", "formula", update.rule, "step-formula"));
  const table = element("table", "numbers", undefined, "step-entries");
  table.appendChild(rowOf(["weight", "before", "dL/dw", "after", "optimizer state"], "th"));
  update.entries.forEach((e) => table.appendChild(rowOf([
    `${e.parameter}[${e.index}]`, e.before.toFixed(6), e.grad.toFixed(6), e.after.toFixed(6),
    e.state.map(([name, value]) => `${name} ${value.toExponential(3)}`).join(", "),
  ])));
  detail.appendChild(table);
  const lower = update.loss_after < update.loss_before;
  detail.appendChild(element("p", "numbers " + (lower ? "good" : "bad"),
    `L on this example: ${update.loss_before.toFixed(6)} → ${update.loss_after.toFixed(6)} (${lower ? "lower" : "not lower: η is too large for this step"})`, "step-after"));
}

// ---- values and pictures, fetched per node -----------------------------------

async function detailOf(index) {
  if (!step.details.has(index)) {
    step.details.set(index, fetchJson(stepUrl("/node", `&node=${index}`)));
  }
  return step.details.get(index);
}

function showValues(detail, node, which) {
  const box = element("div", "values", undefined, "step-values");
  detail.appendChild(box);
  const at = step.position;
  detailOf(node.index).then((full) => {
    if (step.position !== at) return;
    const summary = which === "value" ? full.node.value : full.node.grad;
    if (!summary) return;
    if (summary.picture) {
      drawPicture(box, summary.picture);
    } else if (summary.values && summary.values.length <= 64) {
      box.appendChild(element("p", "numbers", summary.values.map((v) => v.toFixed(4)).join("  ")));
    } else if (summary.values) {
      drawStrip(box, summary.values);
    }
  }).catch((error) => { $("step-error").textContent = error.message; });
}

// blue for positive, orange for negative, strength for size
function colourOf(value, largest) {
  const t = Math.min(1, Math.abs(value) / largest);
  const [r, g, b] = value >= 0 ? [8, 119, 189] : [245, 147, 34];
  return `rgb(${Math.round(255 - t * (255 - r))},${Math.round(255 - t * (255 - g))},${Math.round(255 - t * (255 - b))})`;
}

function drawPicture(box, picture) {
  const scale = Math.max(2, Math.floor(96 / Math.max(picture.rows, picture.cols)));
  const largest = Math.max(1e-12, ...picture.values.map(Math.abs));
  for (let t = 0; t < picture.tiles; t++) {
    const canvas = element("canvas", "tile");
    canvas.width = picture.cols * scale;
    canvas.height = picture.rows * scale;
    const c = canvas.getContext("2d");
    for (let r = 0; r < picture.rows; r++) {
      for (let k = 0; k < picture.cols; k++) {
        c.fillStyle = colourOf(picture.values[(t * picture.rows + r) * picture.cols + k], largest);
        c.fillRect(k * scale, r * scale, scale, scale);
      }
    }
    box.appendChild(canvas);
  }
  const more = picture.of_tiles > picture.tiles ? `, the first ${picture.tiles} of ${picture.of_tiles}` : "";
  const sampled = picture.stride > 1 ? `, every ${picture.stride}th row and column` : "";
  box.appendChild(element("p", "hint", `the last two axes as pictures${more}${sampled}; blue positive, orange negative`));
}

function drawStrip(box, values) {
  const canvas = element("canvas", "tile");
  const columns = Math.ceil(Math.sqrt(values.length));
  const scale = Math.max(2, Math.floor(192 / columns));
  canvas.width = columns * scale;
  canvas.height = Math.ceil(values.length / columns) * scale;
  const c = canvas.getContext("2d");
  const largest = Math.max(1e-12, ...values.map(Math.abs));
  values.forEach((v, k) => {
    c.fillStyle = colourOf(v, largest);
    c.fillRect((k % columns) * scale, Math.floor(k / columns) * scale, scale, scale);
  });
  box.appendChild(canvas);
  box.appendChild(element("p", "hint", `${values.length} values, row by row; blue positive, orange negative`));
}

// ---- an MLP: the network drawn, every weight clickable --------------------------

function isMlp(trace) {
  return trace.layers.every((l) => /^(Linear|Tanh|Sigmoid|ReLU|LeakyReLU|GELU|SiLU|Softsign|Identity)\b/.test(l.description)) &&
    trace.layers.some((l) => l.description.startsWith("Linear")) &&
    trace.nodes.every((n) => n.value.shape.reduce((a, b) => a * b, 1) <= 4096);
}

// the linear layers: their weight node, input node and output node
function linearLayers(trace) {
  return trace.layers.filter((l) => l.description.startsWith("Linear")).map((layer) => {
    const weight = layer.nodes.map((i) => trace.nodes[i]).find((n) => n.name && n.name.endsWith("weight"));
    return { layer, weight, inputs: weight.value.shape[1], outputs: weight.value.shape[0] };
  });
}

function networkGeometry(canvas, linears) {
  const width = canvas.width, height = canvas.height;
  const columns = [linears[0].inputs, ...linears.map((l) => l.outputs)];
  const x = (column) => 40 + (column * (width - 80)) / (columns.length - 1);
  const y = (column, unit) => 14 + ((unit + 0.5) * (height - 28)) / columns[column];
  return { columns, x, y };
}

// a pixel of the page on a weight's line where a click picks that weight (lines
// cross and crowd, so not every pixel of it will do) — what the browser test clicks
function weightPoint(linear, row, col) {
  const canvas = $("step-network");
  const linears = linearLayers(step.trace);
  const k = linears.findIndex((l) => l.layer.index === linear);
  const { x, y } = networkGeometry(canvas, linears);
  const box = canvas.getBoundingClientRect();
  const sx = box.width / canvas.width, sy = box.height / canvas.height;
  for (let left = Math.ceil(box.left + sx * x(k)); left < box.left + sx * x(k + 1); left++) {
    const t = ((left - box.left) / sx - x(k)) / (x(k + 1) - x(k));
    const top = Math.round(box.top + sy * (y(k, col) + t * (y(k + 1, row) - y(k, col))));
    const picked = weightAt(left, top);
    if (picked && picked.layer === linear && picked.row === row && picked.col === col) return { x: left, y: top };
  }
  return null;
}

async function drawStepNetwork() {
  const canvas = $("step-network");
  canvas.hidden = false;
  const linears = linearLayers(step.trace);
  const weights = await Promise.all(linears.map((l) => detailOf(l.weight.index)));
  const c = canvas.getContext("2d");
  c.clearRect(0, 0, canvas.width, canvas.height);
  const { columns, x, y } = networkGeometry(canvas, linears);
  const moment = step.sequence[step.position];
  linears.forEach((linear, k) => {
    const values = weights[k].node.value.values;
    const largest = Math.max(1e-12, ...values.map(Math.abs));
    const active = moment.node !== null && step.trace.nodes[moment.node].layer === linear.layer.index;
    for (let o = 0; o < linear.outputs; o++) {
      for (let i = 0; i < linear.inputs; i++) {
        const w = values[o * linear.inputs + i];
        const chosen = step.weight && step.weight.layer === linear.layer.index && step.weight.row === o && step.weight.col === i;
        c.globalAlpha = chosen ? 1 : (active ? 0.2 : 0.1) + 0.5 * Math.abs(w) / largest;
        c.strokeStyle = chosen ? "#111" : w > 0 ? POSITIVE : NEGATIVE;
        c.lineWidth = chosen ? 3 : 0.3 + 2 * Math.abs(w) / largest;
        c.beginPath();
        c.moveTo(x(k), y(k, i));
        c.lineTo(x(k + 1), y(k + 1, o));
        c.stroke();
      }
    }
  });
  c.globalAlpha = 1;
  columns.forEach((units, column) => {
    for (let u = 0; u < units; u++) {
      c.beginPath();
      c.arc(x(column), y(column, u), Math.max(1.5, Math.min(5, (canvas.height - 28) / units / 2.5)), 0, 2 * Math.PI);
      c.fillStyle = "#fff";
      c.fill();
      c.strokeStyle = "#52606d";
      c.stroke();
    }
  });
}

// the weight whose line passes nearest a point of the page (within 6 pixels)
function weightAt(clientX, clientY) {
  const canvas = $("step-network");
  const box = canvas.getBoundingClientRect();
  const px = (clientX - box.left) * canvas.width / box.width;
  const py = (clientY - box.top) * canvas.height / box.height;
  const linears = linearLayers(step.trace);
  const { x, y } = networkGeometry(canvas, linears);
  let best = null;
  linears.forEach((linear, k) => {
    if (px < x(k) || px > x(k + 1)) return;
    const t = (px - x(k)) / (x(k + 1) - x(k));
    for (let o = 0; o < linear.outputs; o++) {
      for (let i = 0; i < linear.inputs; i++) {
        const distance = Math.abs(y(k, i) + t * (y(k + 1, o) - y(k, i)) - py);
        if (distance < 6 && (!best || distance < best.distance)) best = { distance, layer: linear.layer.index, row: o, col: i };
      }
    }
  });
  return best;
}

function clickNetwork(event) {
  const best = weightAt(event.clientX, event.clientY);
  if (!best) return;
  step.weight = best;
  showDerivation(best);
  drawStepNetwork();
}

// dL/dW[j][i] = δ_j · a_i for the chosen weight, every number from the trace
async function showDerivation({ layer, row, col }) {
  const trace = step.trace;
  const linear = linearLayers(trace).find((l) => l.layer.index === layer);
  const { input, output } = linear.layer;
  const [a, z, w] = await Promise.all([input === null ? null : detailOf(input), detailOf(output), detailOf(linear.weight.index)]);
  const activation = a ? a.node.value.values[col] : NaN;
  const delta = z.node.grad.values[row];
  const grad = w.node.grad.values[row * linear.inputs + col];
  const before = w.node.value.values[row * linear.inputs + col];
  const after = w.after.values[row * linear.inputs + col];
  const name = `${linear.weight.name}[${row}][${col}]`;
  const box = $("step-derivation");
  box.innerHTML = "";
  box.appendChild(element("h3", "", `The weight ${name}: from input unit ${col} to unit ${row} of layer ${layer}`));
  box.appendChild(element("p", "formula", `z_${row} = Σ_i W[${row}][i]·a_i + b_${row}, so dL/dW[${row}][${col}] = dL/dz_${row} · dz_${row}/dW[${row}][${col}] = δ_${row} · a_${col}`));
  box.appendChild(element("p", "numbers", `δ_${row} = ${delta.toFixed(6)} (the gradient arriving at the layer's output), a_${col} = ${activation.toFixed(6)} (the layer's input in the forward pass)`));
  box.appendChild(element("p", "numbers", `δ·a = ${delta.toFixed(6)} × ${activation.toFixed(6)} = ${(delta * activation).toFixed(6)}; backpropagation gave dL/dW = ${grad.toFixed(6)}`, "step-derivation-product"));
  box.appendChild(element("p", "numbers", `update (${trace.update.rule}): ${before.toFixed(6)} → ${after.toFixed(6)}`));
  box.dataset.delta = String(delta);
  box.dataset.activation = String(activation);
  box.dataset.grad = String(grad);
}

window.stepView = { step, weightPoint, weightAt, moveStep, jumpToStage, loadStep };
