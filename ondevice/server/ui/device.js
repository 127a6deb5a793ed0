// Your device: what `ondevice doctor` knows, the models in the store, and the device-target panels installed
// packages provide (bench: the predicted seed targets on a catalog device chosen from a list).

import { bytes, el, json } from "./api.js";

const $ = (id) => document.getElementById(id);

function row(name, value) { return el("tr", {}, el("th", { scope: "row" }, name), el("td", {}, value)); }

function doctorRows(d) {
  const llama = d.llama_cpp || {};
  const features = Object.entries(llama.features || {}).filter(([k, v]) => v && k === k.toUpperCase()).map(([k]) => k);
  return [
    row("OS / Python", `${d.os} / ${d.python}`),
    row("CPU", `${d.cpu} (${d.arch}), ${d.cores.physical} physical / ${d.cores.logical} logical cores`),
    row("ISA", (d.isa || []).join(" ") || "–"),
    row("RAM", `${d.ram_available_gb.toFixed(1)} GB available of ${d.ram_total_gb.toFixed(1)} GB`),
    row("Memory bandwidth", `${d.bandwidth_gbps.toFixed(1)} GB/s (measured)`),
    row("llama.cpp", llama.installed ? `llama-cpp-python ${llama.version}, GPU offload: ${llama.gpu_offload ? "yes" : "no"}`
      + (features.length ? `; ${features.join(" ")}` : "") : "not installed"),
    row("onnxruntime", `${d.onnxruntime_version} (genai ${d.onnxruntime_genai_version})`),
    row("Providers", (d.onnxruntime_providers || []).join(", ") || "–"),
    row("Hazards", (d.hazards || []).length ? el("ul", {}, ...d.hazards.map((h) => el("li", {}, h))) : "none found"),
  ];
}

function modelRows(models) {
  return models.map((m) => el("tr", {}, el("td", {}, m.name), el("td", {}, m.format), el("td", {}, m.task),
    el("td", {}, m.n_params ? `${(m.n_params / 1e6).toFixed(0)} M` : "–"), el("td", {}, m.quant),
    el("td", {}, m.error ? `unavailable: ${m.error}` : bytes(m.size_bytes))));
}

function panelNode(panel, index) {
  const box = el("section", { className: "panel", dataset: { source: panel.source } }, el("h2", {}, panel.title));
  if (panel.error) { box.append(el("p", { className: "bad" }, panel.error)); return box; }
  if (panel.devices) {
    const id = `target-device-${index}`;
    const select = el("select", { id }, ...panel.devices.map((d) => el("option",
      { value: d.name, selected: d.name === panel.device }, d.title)));
    select.addEventListener("change", () => loadTargets(select.value));
    box.append(el("label", { htmlFor: id }, "Device"), select);
  }
  const head = el("tr", {}, ...panel.columns.map((c) => el("th", { scope: "col" }, c)));
  const body = panel.rows.map((r) => el("tr", {}, ...r.map((cell) => el("td",
    cell === "PASS" ? { className: "pass" } : cell === "FAIL" ? { className: "fail" } : {}, cell))));
  box.append(el("table", { className: "grid targets" }, el("thead", {}, head), el("tbody", {}, ...body)));
  if (panel.note) box.append(el("p", { className: "muted" }, panel.note));
  return box;
}

async function loadTargets(device) {
  const query = device ? `?device=${encodeURIComponent(device)}` : "";
  const { panels } = await json("GET", `/ui/api/targets${query}`);
  const focused = document.activeElement && document.activeElement.id;
  $("targets").replaceChildren(...(panels.length ? panels.map(panelNode)
    : [el("p", { className: "muted" }, "No package provides device targets (install the bench package).")]));
  if (focused && $(focused)) $(focused).focus();
}

export async function initDevice() {
  loadTargets().catch((err) => $("targets").replaceChildren(el("p", { className: "bad" }, err.message)));
  try {
    const d = await json("GET", "/ui/api/device");
    $("doctor-table").tBodies[0].replaceChildren(...doctorRows(d.doctor));
    $("models-table").tBodies[0].replaceChildren(...modelRows(d.models));
  } catch (err) {
    $("doctor-table").tBodies[0].replaceChildren(row("error", err.message));
  }
  document.getElementById("page-device").dataset.loaded = "1";
}
