// cnnlab serve: the Review tab. The run's test and validation images, worst first, each with
// keep / relabel as / exclude; every decision is saved by the server to RUN/relabel.csv at once.
"use strict";

const review = {
  run: null, // the run whose list is shown
  offset: 0,
  total: 0,
  wanted: false, // the tab has been opened: load (and reload on a change of run)
  pageSize: 24,
};

const DECIDED = ["decided-keep", "decided-relabel", "decided-exclude"];

function decisionText(decision) {
  if (!decision) return "not decided";
  if (decision.action === "relabel") return `relabelled as ${decision.label}`;
  return decision.action === "keep" ? "kept" : "excluded";
}

function showDecision(item, decision) {
  item.classList.remove(...DECIDED);
  if (decision) item.classList.add(`decided-${decision.action}`);
  item.dataset.decision = decision ? decision.action : "";
  item.querySelector(".decision").textContent = decisionText(decision);
  item.querySelector(".undo").hidden = !decision;
}

async function decide(item, action, label = null) {
  const { postJSON, showMessage, clearMessage } = window.cnnlab;
  const buttons = item.querySelectorAll("button, select");
  buttons.forEach((b) => (b.disabled = true));
  try {
    const saved = await postJSON("/api/review/decision", {
      run: review.run.id,
      key: item.dataset.key,
      action,
      label,
    });
    // The server answers with the saved decision; after an undo there is none.
    const decision = action === "undo" ? null : (saved && saved.decision) || saved;
    showDecision(item, decision && decision.action ? decision : null);
    clearMessage();
  } catch (error) {
    showMessage(error.message);
  }
  buttons.forEach((b) => (b.disabled = false));
}

function button(className, text, title) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  if (title) b.title = title;
  return b;
}

function reviewItem(entry, classes) {
  const { percent } = window.cnnlab;
  const item = document.createElement("article");
  item.className = "review-item";
  item.dataset.key = entry.key;
  item.dataset.true = entry.true;
  item.dataset.loss = String(entry.loss);
  const wrong = entry.true !== entry.predicted;
  if (wrong) item.classList.add("wrong");

  const thumb = new Image();
  thumb.className = "px";
  thumb.src = entry.thumbnail;
  thumb.alt = entry.file;

  const text = document.createElement("div");
  text.className = "review-text";
  const file = document.createElement("code");
  file.className = "file";
  file.textContent = entry.file;
  file.title = entry.key;
  const classesLine = document.createElement("div");
  const p = entry.probabilities[entry.predicted];
  classesLine.innerHTML =
    "true <b class='true'></b> · predicted <b class='pred'></b> <span class='p'></span>";
  classesLine.querySelector(".true").textContent = entry.true;
  classesLine.querySelector(".pred").textContent = entry.predicted;
  classesLine.querySelector(".p").textContent = `(${percent(p)})`;
  const meta = document.createElement("div");
  meta.className = "hint";
  meta.textContent = `${entry.subset} · loss ${entry.loss.toFixed(3)} · `;
  const decision = document.createElement("span");
  decision.className = "decision";
  meta.append(decision);
  text.append(file, classesLine, meta);

  const actions = document.createElement("div");
  actions.className = "review-actions";
  const keep = button("keep", "Keep", "the label is right");
  const exclude = button("exclude", "Exclude", "leave this image out of the next run");
  const select = document.createElement("select");
  select.className = "relabel-as";
  select.setAttribute("aria-label", `new class for ${entry.file}`);
  for (const name of classes) if (name !== entry.true) select.add(new Option(name, name));
  if (wrong) select.value = entry.predicted;
  const relabel = button("relabel", "Relabel as", "give this image the class chosen beside");
  const undo = button("undo", "Undo");
  keep.addEventListener("click", () => decide(item, "keep"));
  exclude.addEventListener("click", () => decide(item, "exclude"));
  relabel.addEventListener("click", () => decide(item, "relabel", select.value));
  undo.addEventListener("click", () => decide(item, "undo"));
  actions.append(keep, relabel, select, exclude, undo);

  item.append(thumb, text, actions);
  showDecision(item, entry.decision);
  return item;
}

async function loadReview(more = false) {
  const { $, api, state, showMessage } = window.cnnlab;
  if (!state.run) return;
  if (!more) {
    review.run = state.run;
    review.offset = 0;
    $("#review-list").replaceChildren();
  }
  const query = new URLSearchParams({
    run: review.run.id,
    subset: $("#review-subset").value,
    offset: String(review.offset),
    limit: String(review.pageSize),
  });
  const list = $("#review-list");
  list.setAttribute("aria-busy", "true");
  try {
    const page = await api(`/api/review?${query}`);
    review.total = page.total;
    review.offset += page.items.length;
    list.append(...page.items.map((entry) => reviewItem(entry, review.run.classes)));
    $("#review-count").textContent = `${review.offset} of ${page.total} shown`;
    $("#review-more").hidden = review.offset >= page.total;
  } catch (error) {
    showMessage(error.message);
  }
  list.setAttribute("aria-busy", "false");
}

document.addEventListener("DOMContentLoaded", () => {
  const { $ } = window.cnnlab;
  $("#review-subset").addEventListener("change", () => loadReview());
  $("#review-more").addEventListener("click", () => loadReview(true));
});

document.addEventListener("cnnlab:tab", (event) => {
  if (event.detail !== "review") return;
  const { state } = window.cnnlab;
  if (!review.wanted || review.run !== state.run) loadReview();
  review.wanted = true;
});

document.addEventListener("cnnlab:run", () => {
  if (review.wanted && !window.cnnlab.$("#review").hidden) loadReview();
});
