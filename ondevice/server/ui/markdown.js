// A small Markdown renderer for model answers, built on DOM nodes: text only ever becomes text nodes (never
// innerHTML), so whatever a model writes (<script>, <img onerror>, javascript: links) is shown, not run.
// Covers what chat answers use: paragraphs, headings, fenced and inline code, bold/italic, lists, links, quotes.

import { el } from "./api.js";

const INLINE = /(`+)([\s\S]*?)\1|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*\s][^*]*)\*|\[([^\]]+)\]\(([^)\s]+)\)/g;

/** Inline Markdown of one text run -> a list of nodes. */
export function inline(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
    if (m[1]) out.push(el("code", {}, m[2]));
    else if (m[3] || m[4]) out.push(el("strong", {}, ...inline(m[3] || m[4])));
    else if (m[5]) out.push(el("em", {}, ...inline(m[5])));
    else if (m[6]) {
      const url = m[7];
      // Only web and mail links become links; anything else (javascript:, data:) stays as text.
      if (/^(https?:|mailto:)/i.test(url)) {
        out.push(el("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, ...inline(m[6])));
      } else out.push(document.createTextNode(m[0]));
    }
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}

/** Render Markdown `source` into a new <div>. An unclosed code fence (an answer still streaming) renders as code. */
export function render(source) {
  const root = el("div", { className: "md" });
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  let para = [];
  const flush = () => {
    if (para.length) root.append(el("p", {}, ...inline(para.join("\n"))));
    para = [];
  };
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*(```|~~~)\s*([\w+-]*)\s*$/);
    if (fence) {
      flush();
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i += 1;
      const code = el("code", fence[2] ? { className: `language-${fence[2]}` } : {}, body.join("\n"));
      root.append(el("pre", {}, code));
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (heading) {
      flush();
      root.append(el(`h${Math.min(heading[1].length + 2, 6)}`, {}, ...inline(heading[2])));
      i += 1;
      continue;
    }
    const item = line.match(/^\s*([-*+]|\d+[.)])\s+(.*)$/);
    if (item) {
      flush();
      const ordered = /\d/.test(item[1]);
      const list = el(ordered ? "ol" : "ul");
      while (i < lines.length) {
        const m = lines[i].match(/^\s*([-*+]|\d+[.)])\s+(.*)$/);
        if (!m || /\d/.test(m[1]) !== ordered) break;
        list.append(el("li", {}, ...inline(m[2])));
        i += 1;
      }
      root.append(list);
      continue;
    }
    if (line.startsWith(">")) {
      flush();
      const quote = [];
      while (i < lines.length && lines[i].startsWith(">")) quote.push(lines[i++].replace(/^>\s?/, ""));
      root.append(el("blockquote", {}, ...inline(quote.join("\n"))));
      continue;
    }
    if (!line.trim()) flush();
    else para.push(line);
    i += 1;
  }
  flush();
  return root;
}
