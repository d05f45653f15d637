"use strict";
// The page of `fedbrats annotate --serve`. Slices come as one byte a pixel in display order:
// row r, column c of slice k is voxel (i, j, k) = (c, rows - 1 - r, k).

const view = document.getElementById("view");
const context = view.getContext("2d");
const sliceInput = document.getElementById("slice");
const modalitySelect = document.getElementById("modality");
const opacityInput = document.getElementById("opacity");
const statusLine = document.getElementById("status");
const page = { info: null, grey: null, labels: null, colours: {}, busy: false };

function say(text, isError) {
  statusLine.textContent = text;
  statusLine.className = isError ? "error" : "";
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  if (path.startsWith("/api/slice") || path.startsWith("/api/labels")) {
    if (!response.ok) throw new Error((await response.json()).error);
    return new Uint8Array(await response.arrayBuffer());
  }
  return { status: response.status, data: await response.json() };
}

function hexColour(hex) {
  return [1, 3, 5].map((at) => parseInt(hex.slice(at, at + 2), 16));
}

function draw() {
  const [nx, ny] = page.info.shape;
  const image = context.createImageData(nx, ny);
  const alpha = Number(opacityInput.value) / 100;
  for (let p = 0; p < nx * ny; p++) {
    const grey = page.grey[p];
    const colour = page.colours[page.labels[p]];
    const mix = colour ? alpha : 0;
    for (let c = 0; c < 3; c++) {
      image.data[4 * p + c] = Math.round(grey * (1 - mix) + (colour ? colour[c] : 0) * mix);
    }
    image.data[4 * p + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  document.body.dataset.drawn = `${sliceInput.value}:${modalitySelect.value}:${page.info.version}`;
}

async function loadSlice() {
  const k = Number(sliceInput.value);
  document.getElementById("slice-label").textContent = `${k + 1} / ${page.info.shape[2]}`;
  const [grey, labels] = await Promise.all([
    api(`/api/slice?modality=${modalitySelect.value}&k=${k}`), api(`/api/labels?k=${k}`),
  ]);
  page.grey = grey;
  page.labels = labels;
  draw();
}

function showState(state) {
  Object.assign(page.info, state);
  const counts = Object.entries(state.counts).map(([v, n]) => `label ${v}: ${n}`).join(", ");
  document.getElementById("clicks").textContent = `clicks: ${state.clicks.length} (${counts})`;
  document.body.dataset.version = state.version;
}

async function change(path, body) {
  if (page.busy) return;
  page.busy = true;
  say("segmenting...");
  try {
    const { status, data } = await api(path, body);
    if (status !== 200) throw new Error(data.error);
    showState(data);
    await loadSlice();
    say(`${data.changed} voxel(s) changed`);
  } catch (error) {
    say(String(error.message || error), true);
  } finally {
    page.busy = false;
  }
}

function voxelAt(event) {
  const [nx, ny] = page.info.shape;
  const box = view.getBoundingClientRect();
  const column = Math.floor(((event.clientX - box.left) / box.width) * nx);
  const row = Math.floor(((event.clientY - box.top) / box.height) * ny);
  return [column, ny - 1 - row, Number(sliceInput.value)];
}

async function save() {
  say("saving...");
  let { status, data } = await api("/api/save", { overwrite: false });
  if (status === 409) {
    if (!window.confirm(`${data.exists} exists. Overwrite it?`)) return "not saved: the existing label is kept";
    ({ status, data } = await api("/api/save", { overwrite: true }));
  }
  if (status !== 200) throw new Error(data.error);
  return `saved to ${data.path}${data.datalist ? `\nlisted in ${data.datalist}` : ""}`;
}

async function saveClicked() {
  try {
    say(await save());
  } catch (error) {
    say(String(error.message || error), true);
  } finally {
    document.body.dataset.saved = String(Number(document.body.dataset.saved || 0) + 1);
  }
}

function buildControls(info) {
  document.getElementById("case").textContent = info.case;
  document.title = `fedbrats annotate: ${info.case}`;
  for (const m of info.modalities) modalitySelect.add(new Option(m.title, m.name));
  document.getElementById("regions").innerHTML = info.regions.map((r, n) =>
    `<label><input type="radio" name="region" value="${r}"${n === 0 ? " checked" : ""}> ${r.toUpperCase()}</label>`
  ).join(" ");
  document.getElementById("legend").innerHTML = info.labels.map((l) =>
    `<div><span style="background:${l.colour}"></span>${l.value}: ${l.name}</div>`
  ).join("");
  for (const l of info.labels) page.colours[l.value] = hexColour(l.colour);
  const [nx, ny, nz] = info.shape;
  view.width = nx;
  view.height = ny;
  const scale = 512 / Math.max(nx, ny);
  view.style.width = `${nx * scale}px`;
  view.style.height = `${ny * scale}px`;
  sliceInput.max = nz - 1;
  sliceInput.value = Math.floor(nz / 2);
}

async function start() {
  const { data } = await api("/api/case");
  page.info = data;
  buildControls(data);
  showState(data);
  await loadSlice();
  say(`${data.shape.join(" x ")} voxels; saving writes ${data.save_to}`);
  sliceInput.addEventListener("input", loadSlice);
  modalitySelect.addEventListener("change", loadSlice);
  opacityInput.addEventListener("input", draw);
  view.addEventListener("click", (event) => change("/api/click", {
    voxel: voxelAt(event),
    positive: document.querySelector("input[name=mode]:checked").value === "positive",
    region: document.querySelector("input[name=region]:checked").value,
  }));
  document.getElementById("undo").addEventListener("click", () => change("/api/undo", {}));
  document.getElementById("clear").addEventListener("click", () => change("/api/clear", {}));
  document.getElementById("save").addEventListener("click", saveClicked);
}

start().catch((error) => say(String(error.message || error), true));
