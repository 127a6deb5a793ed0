// Your files: index a folder (progress with counts and ETA, cancellable, incremental), list and remove indexes,
// ask with numbered citations that open the cited lines of the source file.

import { el, json, stream } from "./api.js";

const $ = (id) => document.getElementById(id);
const api = (name, rest = "") => `/ui/api/indexes/${encodeURIComponent(name)}${rest}`;
let polling = null;

function seconds(s) {
  if (s === null || s === undefined) return "–";
  return s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`;
}

function showJob(job) {
  const box = $("index-progress");
  box.hidden = false;
  const bar = $("index-bar");
  bar.max = Math.max(job.files_total, 1);
  bar.value = job.files_done;
  const counts = `${job.files_done}/${job.files_total} files · ${job.chunks} chunks · ${job.embedded} embedded`;
  const text = {
    running: job.phase === "indexing" ? `indexing ${job.name}: ${counts} · ETA ${seconds(job.eta_s)}`
      : `${job.name}: ${job.phase}…`,
    done: `${job.name} is up to date: ${counts} in ${seconds(job.elapsed_s)}` +
      (job.summary ? ` (${job.summary.added} added, ${job.summary.updated} changed, ${job.summary.unchanged} unchanged, ` +
        `${job.summary.deleted} removed${job.summary.failed.length ? `, ${job.summary.failed.length} unreadable` : ""})` : ""),
    cancelled: `indexing ${job.name} cancelled after ${job.files_done} files (re-index continues where it stopped)`,
    failed: `indexing ${job.name} failed: ${job.error}`,
  }[job.state];
  $("index-status").textContent = text;
  $("index-status").dataset.state = job.state;
  $("index-cancel").hidden = job.state !== "running";
  $("index-cancel").dataset.name = job.name;
}

async function poll(name) {
  clearTimeout(polling);
  const job = await json("GET", api(name, "/job"));
  showJob(job);
  if (job.state === "running") polling = setTimeout(() => poll(name).catch(report), 400);
  else refresh().catch(report);
}

function report(err) {
  $("index-progress").hidden = false;
  $("index-status").textContent = `error: ${err.message}`;
  $("index-status").dataset.state = "error";
}

async function startIndex(name, folder) {
  const job = await json("POST", "/ui/api/indexes", { name, folder });
  showJob(job);
  await poll(name);
}

async function refresh() {
  const { indexes } = await json("GET", "/ui/api/indexes");
  const rows = indexes.map((ix) => {
    const reindex = el("button", { type: "button", className: "secondary", disabled: !ix.folder,
                                   title: ix.folder ? `Re-index ${ix.folder} (only changes are read)` : "" }, "Re-index");
    reindex.setAttribute("aria-label", `Re-index ${ix.name}`);
    reindex.addEventListener("click", () => startIndex(ix.name).catch(report));
    const remove = el("button", { type: "button", className: "secondary" }, "Remove");
    remove.setAttribute("aria-label", `Remove index ${ix.name}`);
    remove.addEventListener("click", async () => {
      if (!window.confirm(`Remove the index ${ix.name}? (Your files stay as they are.)`)) return;
      await json("DELETE", api(ix.name)).catch(report);
      refresh().catch(report);
    });
    return el("tr", { dataset: { index: ix.name } }, el("td", {}, ix.name), el("td", {}, ix.folder || "(built elsewhere)"),
      el("td", {}, ix.files ?? "–"), el("td", {}, ix.chunks ?? (ix.error ? `error: ${ix.error}` : "–")),
      el("td", {}, reindex, remove));
  });
  $("index-table").tBodies[0].replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colSpan: 5 }, "No indexes yet: choose a folder above."))]));
  const chosen = $("ask-index").value;
  $("ask-index").replaceChildren(...indexes.map((ix) => el("option", { value: ix.name, selected: ix.name === chosen }, ix.name)));
}

function citationItem(name, c) {
  const where = c.page ? `${c.display}, ${c.span}` : c.span ? `${c.display}:${c.span}` : c.display;
  const link = el("a", { href: "#files", dataset: { path: c.path } }, where);
  link.addEventListener("click", (e) => { e.preventDefault(); openSource(name, c).catch(report); });
  return el("li", { value: c.number }, link);
}

async function openSource(name, c) {
  const src = await json("GET", api(name, `/source?path=${encodeURIComponent(c.path)}`));
  const view = $("source-view");
  view.hidden = false;
  const single = c.start_line && c.start_line === c.end_line;
  $("source-title").textContent = c.page ? `${src.name}, ${c.span}` : `${src.name}, ${single ? "line" : "lines"} ${c.span}`;
  const pre = $("source-lines");
  if (src.lines === null) {  // PDF or DOCX: the cited passage as the indexer read it
    pre.replaceChildren(el("span", { className: "line cited" }, c.text));
    return;
  }
  const lines = src.lines.map((text, i) => {
    const n = i + 1;
    const cited = c.start_line && n >= c.start_line && n <= c.end_line;
    return el("span", { className: cited ? "line cited" : "line", dataset: { line: n } },
      el("span", { className: "ln" }, n), text, "\n");
  });
  pre.replaceChildren(...lines);
  const target = pre.querySelector(".cited");
  if (target) pre.scrollTop = target.offsetTop - pre.offsetTop - 40;
  pre.focus();
}

async function ask(name, question) {
  const answer = $("ask-answer");
  answer.className = "answer";
  answer.textContent = "";
  answer.setAttribute("aria-busy", "true");
  $("ask-citations").replaceChildren();
  $("source-view").hidden = true;
  $("ask-send").disabled = true;
  try {
    await stream(api(name, "/ask"), { question }, (event) => {
      if (event.text) answer.textContent += event.text;
      if (event.error) throw new Error(event.error.message);
      if (event.done) {
        if (!event.found) {
          answer.classList.add("notfound");
          answer.textContent = "Not found in your files.";
          answer.append(el("div", { className: "muted" }, "Nothing in this index is relevant enough to answer from."));
        } else answer.textContent = event.answer;
        $("ask-citations").replaceChildren(...event.citations.map((c) => citationItem(name, c)));
      }
    });
  } catch (err) {
    answer.classList.add("bad");
    answer.textContent = `error: ${err.message}`;
  } finally {
    answer.removeAttribute("aria-busy");
    $("ask-send").disabled = false;
  }
}

export function initFiles() {
  $("index-form").addEventListener("submit", (e) => {
    e.preventDefault();
    startIndex($("index-name").value.trim(), $("index-folder").value.trim()).catch(report);
  });
  $("index-cancel").addEventListener("click", () => {
    json("POST", api($("index-cancel").dataset.name, "/cancel")).catch(report);
  });
  $("ask-form").addEventListener("submit", (e) => {
    e.preventDefault();
    ask($("ask-index").value, $("ask-question").value.trim());
  });
  $("source-close").addEventListener("click", () => { $("source-view").hidden = true; });
  refresh().catch(report);
}
