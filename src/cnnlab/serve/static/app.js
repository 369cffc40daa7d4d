// cnnlab serve: the page's Try tab and what every tab shares (runs, messages, the API).
// Plain JavaScript, no build step, nothing loaded from anywhere but this server. The Teach and
// Review tabs live in teach.js and review.js, which use the `cnnlab` object defined here.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);

const state = {
  runs: [],
  run: null, // the chosen run's entry from /api/runs
  compare: null, // a second run whose bars show beside the first's, or null
  input: null, // {source: "drawing"|"file", blob, name}: what Try analyses
  seen: null, // the model's input as returned by /api/analyze (a data URL), for Teach
  drawn: false,
};

// ------------------------------------------------------------------------------- messages

function showMessage(text, kind = "error") {
  const box = $("#message");
  box.textContent = text;
  box.className = kind;
  box.hidden = !text;
}

function clearMessage() {
  showMessage("", "info");
}

// --------------------------------------------------------------------------------- API

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new Error("the cnnlab server does not answer: is `cnnlab serve` still running?");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = body && typeof body.detail === "string" ? body.detail : response.statusText;
    throw new Error(detail || `HTTP ${response.status}`);
  }
  return body;
}

function postJSON(path, data) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(data),
  });
}

function percent(p) {
  return `${(100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1)}%`;
}

// --------------------------------------------------------------------------------- tabs

function setupTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const select = (tab) => {
    for (const other of tabs) {
      const on = other === tab;
      other.setAttribute("aria-selected", String(on));
      other.tabIndex = on ? 0 : -1;
      document.getElementById(other.getAttribute("aria-controls")).hidden = !on;
    }
    const detail = tab.getAttribute("aria-controls");
    document.dispatchEvent(new CustomEvent("cnnlab:tab", { detail }));
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab));
    // Arrow keys move between tabs, as the WAI-ARIA tabs pattern expects.
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      next.focus();
      select(next);
    });
  });
}

// --------------------------------------------------------------------------------- runs

function compatible(a, b) {
  // The same input fits both: compare only models that take the same images.
  return a.channels === b.channels && a.bit_depth === b.bit_depth && a.digits === b.digits;
}

function describeRun(run) {
  const accuracy =
    run.test_accuracy == null ? "" : ` · test accuracy ${percent(run.test_accuracy)}`;
  return `${run.id}: ${run.model}, ${run.classes.length} classes, ${run.height}x${run.width} ` +
    `${run.channels === 1 ? "gray" : `${run.channels}-channel`} ${run.bit_depth}-bit${accuracy}`;
}

function fillCompare() {
  const picker = $("#compare-picker");
  const others = state.runs.filter((r) => r.id !== state.run.id && compatible(r, state.run));
  picker.replaceChildren(new Option("nothing", ""));
  for (const run of others) picker.add(new Option(`${run.id} (${run.model})`, run.id));
  if (state.compare && others.includes(state.compare)) picker.value = state.compare.id;
  else state.compare = null;
  $("#compare-picker-field").hidden = others.length === 0;
  $("#compare-box").hidden = !state.compare;
}

function chooseRun(id) {
  state.run = state.runs.find((r) => r.id === id) || state.runs[0];
  $("#run-info").textContent = describeRun(state.run);
  fillCompare();
  const digits = state.run.digits;
  $("#draw-area").hidden = !digits;
  $("#draw-off").hidden = digits;
  // A drawing is an input only for digit models; coming back to one brings it back.
  if (!digits && state.input && state.input.source === "drawing") state.input = null;
  if (digits && !state.input && state.drawn) {
    state.input = { source: "drawing", name: "drawing.png" };
  }
  if (!state.input) clearOutputs();
  $("#bars-title").textContent = state.compare ? state.run.id : "Probabilities";
  document.dispatchEvent(new CustomEvent("cnnlab:run", { detail: state.run }));
  if (state.input) analyzer.request();
}

async function loadRuns() {
  state.runs = await api("/api/runs");
  const picker = $("#run-picker");
  for (const run of state.runs) picker.add(new Option(`${run.id} (${run.model})`, run.id));
  $("#run-picker-field").hidden = state.runs.length < 2;
  picker.addEventListener("change", () => chooseRun(picker.value));
  $("#compare-picker").addEventListener("change", (event) => {
    state.compare = state.runs.find((r) => r.id === event.target.value) || null;
    $("#compare-box").hidden = !state.compare;
    $("#bars-title").textContent = state.compare ? state.run.id : "Probabilities";
    $("#bars-compare-title").textContent = state.compare ? state.compare.id : "";
    if (state.input) analyzer.request();
  });
  chooseRun(state.runs[0].id);
}

// ------------------------------------------------------------------------------ analysis

// At most one analysis in flight; a change made meanwhile is analysed when it returns, so the
// last state of the drawing is always the one shown. #try's data-version and data-analysed
// say how far it got (the browser tests wait on them).
const analyzer = {
  busy: false,
  pending: false,
  version: 0,
  request() {
    this.version += 1;
    $("#try").dataset.version = String(this.version);
    if (this.busy) this.pending = true;
    else this.run();
  },
  async run() {
    this.busy = true;
    this.pending = false;
    const version = this.version;
    try {
      await analyse();
    } catch (error) {
      showMessage(error.message);
    }
    $("#try").dataset.analysed = String(version);
    this.busy = false;
    if (this.pending) this.run();
  },
};

async function currentBlob() {
  if (state.input.source === "file") return state.input.blob;
  const canvas = $("#canvas");
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

function analyseWith(run, blob) {
  const form = new FormData();
  form.append("file", blob, state.input.name);
  form.append("source", state.input.source);
  form.append("run", run.id);
  return api("/api/analyze", { method: "POST", body: form });
}

async function analyse() {
  if (!state.input) return;
  const blob = await currentBlob();
  const runs = [state.run, state.compare].filter(Boolean);
  const [main, other] = await Promise.all(runs.map((run) => analyseWith(run, blob)));
  clearMessage();
  showBars($("#bars"), main);
  $("#top-class").textContent = main.class;
  $("#timing").textContent = `${main.milliseconds.toFixed(0)} ms on the server`;
  if (other) showBars($("#bars-compare"), other);
  $("#input-preview").src = main.input;
  $("#gradcam").src = main.gradcam;
  const method = main.method || "Grad-CAM";
  $("#gradcam-caption").textContent = `${method}: where it looked for “${main.target}”`;
  showLayers(main.layers);
  state.seen = main.input;
  document.dispatchEvent(new CustomEvent("cnnlab:input", { detail: main.input }));
}

function clearOutputs() {
  for (const id of ["#bars", "#bars-compare", "#layers"]) $(id).replaceChildren();
  for (const id of ["#input-preview", "#gradcam"]) $(id).removeAttribute("src");
  $("#top-class").textContent = "–";
  $("#timing").textContent = "";
}

function showBars(box, result) {
  const rows = Object.entries(result.probabilities).map(([name, p]) => {
    const row = document.createElement("div");
    row.className = name === result.class ? "bar top" : "bar";
    row.dataset.class = name;
    row.dataset.probability = String(p);
    const label = document.createElement("span");
    label.className = "bar-name";
    label.textContent = name;
    const track = document.createElement("span");
    track.className = "bar-track";
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = percent(p);
    row.append(label, track, value);
    return row;
  });
  box.replaceChildren(...rows);
}

// Anchors of matplotlib's viridis, the colour map of the server's feature maps.
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function viridis(t) {
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
}

function valuesImage(values) {
  // A 1-D layer as a strip of cells coloured like the maps, from its minimum to its maximum.
  const canvas = document.createElement("canvas");
  canvas.width = values.length;
  canvas.height = 1;
  const low = Math.min(...values);
  const span = Math.max(...values) - low || 1;
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(values.length, 1);
  values.forEach((v, i) => pixels.data.set([...viridis((v - low) / span), 255], 4 * i));
  context.putImageData(pixels, 0, 0);
  return canvas.toDataURL("image/png");
}

function showLayers(layers) {
  const items = layers.map((layer) => {
    const box = document.createElement("div");
    box.className = "layer";
    const head = document.createElement("div");
    head.className = "layer-head";
    head.innerHTML = "<b></b> <span></span>";
    head.firstChild.textContent = layer.name;
    head.lastChild.textContent = `${layer.kind} · ${layer.shape.join("x")}`;
    const maps = document.createElement("div");
    maps.className = "maps";
    const sources = layer.maps && layer.maps.length ? layer.maps : [];
    for (const [i, src] of sources.entries()) {
      const img = new Image();
      img.className = "px";
      img.src = src;
      img.alt = `${layer.name} map ${i + 1}`;
      maps.append(img);
    }
    if (!sources.length && layer.values && layer.values.length) {
      const img = new Image();
      img.className = "px strip";
      img.src = valuesImage(layer.values);
      img.alt = `${layer.name}: ${layer.values.length} values`;
      maps.append(img);
    }
    box.append(head, maps);
    return box;
  });
  $("#layers").replaceChildren(...items);
}

// ------------------------------------------------------------------------------- drawing

function setupCanvas() {
  const canvas = $("#canvas");
  const context = canvas.getContext("2d");
  const blank = () => {
    context.fillStyle = "#000";
    context.fillRect(0, 0, canvas.width, canvas.height);
  };
  blank();
  context.strokeStyle = "#fff";
  context.lineWidth = 18;
  context.lineCap = "round";
  context.lineJoin = "round";
  let last = null;
  const point = (event) => {
    // The canvas may be shown smaller than its 280x280 pixels on a phone.
    const box = canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * canvas.width) / box.width,
      ((event.clientY - box.top) * canvas.height) / box.height,
    ];
  };
  const segment = (to) => {
    context.beginPath();
    context.moveTo(...last);
    context.lineTo(...to);
    context.stroke();
    last = to;
    state.input = { source: "drawing", name: "drawing.png" };
    state.drawn = true;
    analyzer.request();
  };
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    last = point(event);
    segment(last); // a dot for a tap
  });
  canvas.addEventListener("pointermove", (event) => {
    if (last) segment(point(event));
  });
  const stop = () => {
    last = null;
  };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  $("#clear").addEventListener("click", () => {
    blank();
    state.drawn = false;
    if (state.input && state.input.source === "drawing") state.input = null;
    clearOutputs();
  });
}

// --------------------------------------------------------------------------------- files

function setupFiles() {
  const input = $("#file-input");
  const drop = $("#drop");
  const take = (file) => {
    if (!file) return;
    state.input = { source: "file", blob: file, name: file.name };
    analyzer.request();
  };
  input.addEventListener("change", () => take(input.files[0]));
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    take(event.dataTransfer.files[0]);
  });
}

// ---------------------------------------------------------------------------------- start

// What teach.js and review.js use; `starters` run once the runs are known.
window.cnnlab = { $, api, postJSON, percent, showMessage, clearMessage, state, starters: [] };

document.addEventListener("DOMContentLoaded", async () => {
  setupTabs();
  setupCanvas();
  setupFiles();
  try {
    await loadRuns();
    await Promise.all(window.cnnlab.starters.map((start) => start()));
  } catch (error) {
    showMessage(error.message);
  }
  document.body.dataset.ready = "true";
});
