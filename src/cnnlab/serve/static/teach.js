// cnnlab serve: the Teach tab. A kernel (named or typed), padding, stride and pooling applied
// by the server to the current input of the Try tab, live on every change, with the size sum.
"use strict";

const teach = {
  busy: false,
  pending: false,
  async request() {
    if (this.busy) {
      this.pending = true;
      return;
    }
    this.busy = true;
    this.pending = false;
    try {
      await applyKernel();
    } catch (error) {
      window.cnnlab.showMessage(error.message);
    }
    this.busy = false;
    if (this.pending) this.request();
  },
};

function formatNumber(x) {
  return Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(3)));
}

async function setupTeach() {
  const { $, api } = window.cnnlab;
  const name = $("#kernel-name");
  const matrix = $("#kernel-matrix");
  const kernels = await api("/api/kernels");
  const byName = new Map(kernels.map((k) => [k.name, k.matrix]));
  const uses = new Map(kernels.map((k) => [k.name, k.use || ""]));
  const showUse = () => {
    $("#kernel-use").textContent = uses.get(name.value) || "your own matrix";
  };
  const custom = name.options[0];
  for (const kernel of kernels) name.add(new Option(kernel.name, kernel.name), custom);
  if (byName.has("sharpen")) name.value = "sharpen";
  showUse();
  name.addEventListener("change", () => {
    showUse();
    const rows = byName.get(name.value);
    if (rows) matrix.value = rows.map((row) => row.map(formatNumber).join(" ")).join("\n");
    teach.request();
  });
  matrix.addEventListener("input", () => {
    name.value = "custom";
    showUse();
    teach.request();
  });
  for (const id of ["#padding", "#stride", "#pool"]) {
    $(id).addEventListener("change", () => teach.request());
  }
  document.addEventListener("cnnlab:input", (event) => {
    $("#kernel-input").src = event.detail;
    if (!$("#teach").hidden) teach.request();
  });
  document.addEventListener("cnnlab:tab", (event) => {
    if (event.detail === "teach") teach.request();
  });
}

async function applyKernel() {
  const { $, postJSON, clearMessage, state } = window.cnnlab;
  if (!state.seen) return;
  const name = $("#kernel-name").value;
  const padding = $("#padding").value;
  const typed = $("#kernel-matrix").value.trim().split(/\n+/).join(";");
  const result = await postJSON("/api/kernel", {
    image: state.seen,
    kernel: name === "custom" ? typed : name,
    padding: /^\d+$/.test(padding) ? Number(padding) : padding,
    stride: Number($("#stride").value),
    pool: $("#pool").value || null,
  });
  clearMessage();
  $("#kernel-output").src = result.output;
  $("#kernel-explanation").textContent =
    `${result.input_size.join("x")} in, ${result.output_size.join("x")} out: ${result.explanation}`;
}

window.cnnlab.starters.push(setupTeach);
