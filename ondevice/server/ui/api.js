// HTTP helpers shared by the pages: JSON calls to the app's routes and server-sent-event streams.
// Every call is same-origin; with --api-key the browser sends the app's cookie (see ondevice/server/ui_auth.py).

const UI_HEADERS = { "X-Ondevice-UI": "1" };

/** An error with the server's message (OpenAI error shape: {error: {message}}). */
export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    message = (body.error && body.error.message) || message;
  } catch (_) { /* not JSON: keep the status line */ }
  return new ApiError(message, response.status);
}

/** fetch + JSON, throwing ApiError on a non-2xx answer. */
export async function json(method, path, body) {
  const init = { method, headers: { ...UI_HEADERS } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  return response.json();
}

/**
 * POST `body` and call onEvent(parsed JSON) for each `data:` line of the event stream, until `[DONE]` or the end.
 * `signal` (an AbortController's) stops it; the resulting AbortError is for the caller to handle.
 */
export async function stream(path, body, onEvent, signal) {
  const response = await fetch(path, {
    method: "POST", signal,
    headers: { ...UI_HEADERS, "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        onEvent(JSON.parse(data));
      }
    }
  }
}

/** A plain POST to /v1/chat/completions (non-streamed). */
export function chat(body, signal) {
  return fetch("/v1/chat/completions", {
    method: "POST", signal, headers: { ...UI_HEADERS, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  }).then(async (r) => { if (!r.ok) throw await failure(r); return r.json(); });
}

/** Create an element: el("td", {className: "x"}, "text", child, ...). Text is always set as text, never HTML. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** "1.2 GB" style sizes (1e9 bytes). */
export function bytes(n) {
  if (!n) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(n < 10 && i ? 1 : 0)} ${units[i]}`;
}
