// Structured output and tools, made visible: a JSON-schema mode that shows the parsed result, and tool calls shown
// as cards with their arguments (answer one with a result to see the model use it).

import { chat, el } from "./api.js";

const $ = (id) => document.getElementById(id);
let model = "";

const SCHEMA = {
  type: "object",
  properties: { name: { type: "string" }, age: { type: "integer" }, city: { type: "string" } },
  required: ["name", "age", "city"],
};
const TOOLS = [{
  type: "function",
  function: {
    name: "get_weather", description: "The current weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
}];
const PROMPTS = { schema: "Invent a person living in Lisbon.", tools: "What is the weather in Lisbon?" };

function mode() { return $("mode-tools").checked ? "tools" : "schema"; }

function setMode(m) {
  $("struct-spec-label").textContent = m === "tools" ? "Tools (OpenAI `tools` list)" : "JSON schema";
  $("struct-spec").value = JSON.stringify(m === "tools" ? TOOLS : SCHEMA, null, 2);
  $("struct-prompt").value = PROMPTS[m];
  $("struct-result").replaceChildren();
}

function showRoute(reply) {
  const box = $("struct-route");
  box.hidden = !reply.ondevice_route;
  if (reply.ondevice_route) {
    const r = reply.ondevice_route;
    box.textContent = `answered by ${r.routed_to}${r.reason ? ` — ${r.reason}` : ""}`;
  }
}

function pretty(value) { return el("pre", {}, el("code", {}, JSON.stringify(value, null, 2))); }

function toolCard(call, messages, tools) {
  let args;
  try { args = JSON.parse(call.function.arguments); } catch (_) { args = call.function.arguments; }
  const input = el("input", { id: `result-${call.id}`, placeholder: '{"temp_c": 21, "sky": "clear"}' });
  const label = el("label", { htmlFor: input.id }, `Result of ${call.function.name}`);
  const button = el("button", { type: "button" }, "Send result");
  const answer = el("div", { className: "answer" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    const followUp = [...messages, { role: "assistant", content: null, tool_calls: [call] },
                      { role: "tool", tool_call_id: call.id, content: input.value || "{}" }];
    try {
      const reply = await chat({ model, messages: followUp, tools, temperature: 0, max_tokens: 200 });
      answer.textContent = reply.choices[0].message.content || "(the model called a tool again)";
      showRoute(reply);
    } catch (err) {
      answer.textContent = `error: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });
  return el("div", { className: "card tool-call" }, el("h3", {}, `tool call: ${call.function.name}`),
    el("div", { className: "muted" }, call.id), pretty(args), label, input, button, answer);
}

async function run() {
  const out = $("struct-result");
  out.replaceChildren(el("p", { className: "muted" }, "running…"));
  $("struct-run").disabled = true;
  let spec;
  try {
    spec = JSON.parse($("struct-spec").value);
  } catch (err) {
    out.replaceChildren(el("p", { className: "bad" }, `The ${mode() === "tools" ? "tools list" : "schema"} is not valid JSON: ${err.message}`));
    $("struct-run").disabled = false;
    return;
  }
  const messages = [{ role: "user", content: $("struct-prompt").value }];
  const request = { model, messages, temperature: 0, max_tokens: 300 };
  if (mode() === "tools") {
    request.tools = spec;
    if ($("struct-require").checked) request.tool_choice = "required";
  }
  else request.response_format = { type: "json_schema", json_schema: { name: "result", schema: spec } };
  try {
    const reply = await chat(request);
    showRoute(reply);
    const message = reply.choices[0].message;
    if (mode() === "tools") {
      const calls = message.tool_calls || [];
      out.replaceChildren(...(calls.length ? calls.map((c) => toolCard(c, messages, spec))
        : [el("p", {}, "No tool call; the model answered:"), el("div", { className: "answer" }, message.content || "")]));
    } else {
      let parsed;
      try {
        parsed = JSON.parse(message.content);
      } catch (err) {
        out.replaceChildren(el("p", { className: "bad" }, `not JSON (${reply.choices[0].finish_reason}): ${err.message}`),
          el("pre", {}, message.content));
        return;
      }
      out.replaceChildren(el("h2", {}, "Parsed result"), el("div", { className: "card parsed" }, pretty(parsed)),
        el("p", { className: "muted" }, `${reply.usage.completion_tokens} tokens, finish: ${reply.choices[0].finish_reason}`));
    }
  } catch (err) {
    out.replaceChildren(el("p", { className: "bad" }, `error: ${err.message}`));
  } finally {
    $("struct-run").disabled = false;
  }
}

export function initStructured(info) {
  model = info.model || "";
  setMode("schema");
  $("mode-schema").addEventListener("change", () => setMode("schema"));
  $("mode-tools").addEventListener("change", () => setMode("tools"));
  $("struct-form").addEventListener("submit", (e) => { e.preventDefault(); run(); });
}
