// Chat: streamed answers from /v1/chat/completions, a stop button, Markdown, conversations kept in this browser
// (localStorage) and reopened, system prompt and sampling settings, live TTFT and tokens/s.

import { chat, el, stream } from "./api.js";
import { render } from "./markdown.js";

const STORE = "ondevice.conversations";
const $ = (id) => document.getElementById(id);
let model = "";
let conversations = [];
let current = null;
let controller = null;

function load() {
  try { conversations = JSON.parse(localStorage.getItem(STORE) || "[]"); } catch (_) { conversations = []; }
}

function save() {
  localStorage.setItem(STORE, JSON.stringify(conversations));
}

function fresh() {
  return { id: `c${Date.now()}${Math.random().toString(16).slice(2, 6)}`, title: "New conversation", messages: [],
           system: $("chat-system").value, updated: Date.now() };
}

function renderHistory() {
  const list = $("chat-history");
  list.replaceChildren(...conversations.map((c) => el("option", { value: c.id, selected: c === current }, c.title)));
}

function messageNode(role, text, route) {
  const body = el("div", { className: "body" });
  if (role === "assistant") body.append(render(text));
  else body.textContent = text;
  const node = el("div", { className: `msg ${role}` }, el("div", { className: "who" }, role), body);
  if (route) node.append(routeNode(route));
  return node;
}

function routeNode(route) {
  return el("div", { className: "route" }, `answered by ${route.routed_to}${route.reason ? ` — ${route.reason}` : ""}`);
}

function renderLog() {
  const log = $("chat-log");
  log.replaceChildren(...current.messages.map((m) => messageNode(m.role, m.content, m.route)));
  log.scrollTop = log.scrollHeight;
  $("chat-system").value = current.system || "";
}

function select(id) {
  current = conversations.find((c) => c.id === id) || current;
  renderHistory();
  renderLog();
}

function settings() {
  const number = (id) => { const v = $(id).value; return v === "" ? undefined : Number(v); };
  return { temperature: number("chat-temperature"), top_p: number("chat-top-p"),
           max_tokens: number("chat-max-tokens"), seed: number("chat-seed") };
}

function setBusy(busy) {
  $("chat-send").disabled = busy;
  $("chat-stop").disabled = !busy;
}

function stat(id, text) { $(id).textContent = text; }

async function send(text) {
  if (!current) { current = fresh(); conversations.unshift(current); }
  current.system = $("chat-system").value;
  if (!current.messages.length) current.title = text.slice(0, 40);
  current.messages.push({ role: "user", content: text });
  current.updated = Date.now();
  save();
  renderHistory();
  const log = $("chat-log");
  log.append(messageNode("user", text));
  const reply = { role: "assistant", content: "" };
  const node = messageNode("assistant", "");
  node.setAttribute("aria-busy", "true");
  log.append(node);
  const body = node.querySelector(".body");
  const messages = [...(current.system ? [{ role: "system", content: current.system }] : []),
                    ...current.messages.map(({ role, content }) => ({ role, content }))];
  const request = { model, messages, ...settings() };
  controller = new AbortController();
  setBusy(true);
  const t0 = performance.now();
  let first = null;
  let pieces = 0;
  let usage = null;
  ["stat-ttft", "stat-tps", "stat-tokens"].forEach((id) => stat(id, "…"));
  try {
    if ($("chat-stream").checked) {
      await stream("/v1/chat/completions", { ...request, stream: true, stream_options: { include_usage: true } },
        (chunk) => {
          if (chunk.error) throw new Error(chunk.error.message);
          if (chunk.usage) usage = chunk.usage;
          if (chunk.ondevice_route) reply.route = chunk.ondevice_route;
          const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
          if (!delta || !delta.content) return;
          const now = performance.now();
          if (first === null) { first = now; stat("stat-ttft", `${Math.round(first - t0)} ms`); }
          pieces += 1;
          reply.content += delta.content;
          body.replaceChildren(render(reply.content));
          if (now > first) stat("stat-tps", `≈${(pieces / ((now - first) / 1000)).toFixed(1)} tok/s`);
          stat("stat-tokens", String(pieces));
          log.scrollTop = log.scrollHeight;
        }, controller.signal);
    } else {
      const answer = await chat(request, controller.signal);
      usage = answer.usage;
      reply.content = answer.choices[0].message.content || "";
      reply.route = answer.ondevice_route;
      body.replaceChildren(render(reply.content));
      stat("stat-ttft", "– (not streamed)");
    }
    const end = performance.now();
    if (usage) {
      stat("stat-tokens", `${usage.completion_tokens} (prompt ${usage.prompt_tokens})`);
      if (first !== null && end > first && usage.completion_tokens > 1) {  // decode only: after the first token
        stat("stat-tps", `${((usage.completion_tokens - 1) / ((end - first) / 1000)).toFixed(1)} tok/s`);
      } else if (first === null && usage.completion_tokens) {  // not streamed: the whole request, prompt included
        stat("stat-tps", `${(usage.completion_tokens / ((end - t0) / 1000)).toFixed(1)} tok/s (whole request)`);
      }
    }
  } catch (err) {
    if (err.name === "AbortError") {
      reply.stopped = true;
      node.append(el("div", { className: "route" }, "stopped"));
    } else {
      node.classList.add("error");
      body.replaceChildren(`error: ${err.message}`);
      reply.error = true;
    }
  } finally {
    controller.abort();  // closes the connection if an error ended the read early (no-op after the end)
    node.removeAttribute("aria-busy");
    if (reply.route) node.append(routeNode(reply.route));
    controller = null;
    setBusy(false);
    if (!reply.error) current.messages.push(reply);
    else current.messages.pop();  // keep the question out of a failed turn's history; it stays on screen
    current.updated = Date.now();
    save();
    $("chat-input").focus();
  }
}

export function initChat(info) {
  model = info.model || "";
  $("chat-max-tokens").value = info.default_max_tokens || 512;
  load();
  current = conversations[0] || null;
  if (current) { renderHistory(); renderLog(); }
  $("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("chat-input").value.trim();
    if (!text || controller) return;
    $("chat-input").value = "";
    send(text);
  });
  $("chat-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("chat-form").requestSubmit();
    }
  });
  $("chat-stop").addEventListener("click", () => { if (controller) controller.abort(); });
  document.addEventListener("keydown", (e) => {  // Escape stops an answer, wherever the focus is on this page
    if (e.key === "Escape" && controller && !$("page-chat").hidden) controller.abort();
  });
  $("chat-new").addEventListener("click", () => {
    if (controller) return;
    current = fresh();
    conversations.unshift(current);
    save();
    renderHistory();
    renderLog();
    $("chat-input").focus();
  });
  $("chat-delete").addEventListener("click", () => {
    if (!current || controller) return;
    conversations = conversations.filter((c) => c !== current);
    current = conversations[0] || null;
    save();
    renderHistory();
    if (current) renderLog(); else $("chat-log").replaceChildren();
  });
  $("chat-history").addEventListener("change", (e) => { if (!controller) select(e.target.value); });
  $("chat-system").addEventListener("change", () => { if (current) { current.system = $("chat-system").value; save(); } });
}
