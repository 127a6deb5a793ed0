// Entry point: the page tabs (with the page in the address: #chat, #files, #structured, #device) and the header
// line saying which model, backend and device answer.

import { json } from "./api.js";
import { initChat } from "./chat.js";
import { initFiles } from "./files.js";
import { initStructured } from "./structured.js";
import { initDevice } from "./device.js";

const PAGES = { chat: initChat, files: initFiles, structured: initStructured, device: initDevice };
const started = new Set();
let info = null;

function show(name) {
  if (!(name in PAGES)) name = "chat";
  for (const tab of document.querySelectorAll(".tab")) {
    if (tab.dataset.page === name) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== `page-${name}`;
  if (!started.has(name) && info) {
    started.add(name);
    PAGES[name](info);
  }
  document.body.dataset.page = name;
}

async function main() {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => { window.location.hash = tab.dataset.page; });
  }
  window.addEventListener("hashchange", () => show(window.location.hash.slice(1)));
  const line = document.getElementById("model-info");
  try {
    info = await json("GET", "/ui/api/info");
    const parts = [info.model, info.backend, info.device, info.n_ctx && `context ${info.n_ctx}`];
    if (info.remote) parts.push(`routes to ${info.remote} (${info.route})`);
    line.textContent = parts.filter(Boolean).join(" · ");
  } catch (err) {
    line.textContent = `server unavailable: ${err.message}`;
    info = {};
  }
  show(window.location.hash.slice(1) || "chat");
  document.body.dataset.ready = "1";
}

main();
