"""Chat at app speed: time to first token over a multi-turn conversation, ours vs llama-cpp-python, side by side.

    ondevice bench chat-turns smollm2-135m --turns 8 --turn-tokens 400
    ondevice bench chat-turns smollm2-135m --restore-tokens 2000      # also: a saved session vs a cold start
    ondevice bench chat-turns PROBE.gguf --chat-template plain --no-reference  # a model without a template

Each turn sends the whole history plus a new user message of about `--turn-tokens` tokens (documentation text from
the standard library, the same on every machine) and streams an answer of `--answer-tokens` tokens at temperature 0.
Ours is `Model.chat(..., stream=True)`; the reference is llama-cpp-python's `Llama.create_chat_completion(...,
stream=True)` on the same GGUF file with the same threads, context and batch size. The two conversations alternate
turn by turn so they share the machine's conditions. TTFT is measured from the call to the first streamed text.

`--restore-tokens N` builds a conversation of about N tokens and measures the TTFT of one more (short) turn two
ways: cold (the cache emptied: the history is read again), and after a restart from a saved session (`Chat.save`,
the model closed and loaded again in this process, `Chat.load`), with the load and restore times beside it.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import ondevice

SYSTEM = "You are a concise assistant. Answer in at most two sentences."
# `--chat-template plain`: role-prefixed lines, for a model without a template of its own (the 8B shape probe).
PLAIN_TEMPLATE = ("{% for m in messages %}{{ m['role'] | upper }}: {{ m['content'] }}\n{% endfor %}"
                  "{% if add_generation_prompt %}ASSISTANT:{% endif %}")


@dataclass
class Turn:
    turn: int
    prompt_tokens: int
    ours_ttft_ms: float
    ours_reused_tokens: int
    reference_ttft_ms: float | None


@dataclass
class Restore:
    history_tokens: int
    cold_ttft_ms: float
    load_ms: float          # model load after the "restart"
    restore_ms: float       # Chat.load: read the file, check it, put the KV cache back
    restored_ttft_ms: float
    restored_reused_tokens: int  # prompt tokens of the new turn that came from the restored cache
    session_bytes: int


@dataclass
class ChatTurnsResult:
    model: str
    threads: int
    n_ctx: int
    turns: list[Turn] = field(default_factory=list)
    restore: Restore | None = None
    reuse_align: int = 1     # ours reuses whole chunks of this many positions (ondevice.backends.cache.REUSE_ALIGN)

    def ratio(self, side: str) -> float | None:
        """TTFT of the last turn / the first (the target: at most 1.5)."""
        values = [getattr(t, f"{side}_ttft_ms") for t in self.turns]
        return round(values[-1] / values[0], 2) if len(values) > 1 and values[0] else None


def user_turns(model: ondevice.Model, n: int, tokens: int) -> list[str]:
    """n user messages of about `tokens` tokens each: standard-library documentation to summarise."""
    from pydoc_data.topics import topics

    text = "\n".join(topics[k] for k in sorted(topics))
    ids = model.tokenize(text, add_special=False)
    return [f"Summarise this in one sentence:\n\n{model.detokenize(ids[i * tokens:(i + 1) * tokens])}"
            for i in range(n)]


def _ours(model: ondevice.Model, messages: list[dict], answer_tokens: int) -> tuple[float, str, ondevice.Timings]:
    t0 = time.perf_counter()
    stream = model.chat(messages, max_tokens=answer_tokens, stream=True)
    ttft, pieces = None, []
    for piece in stream:
        ttft = ttft if ttft is not None else (time.perf_counter() - t0) * 1000
        pieces.append(piece)
    return ttft or 0.0, "".join(pieces), stream.result.timings


def _reference(llm, messages: list[dict], answer_tokens: int) -> tuple[float, str]:
    t0 = time.perf_counter()
    ttft, pieces = None, []
    for chunk in llm.create_chat_completion(messages=messages, max_tokens=answer_tokens, temperature=0.0,
                                            stream=True):
        text = chunk["choices"][0]["delta"].get("content")
        if text:
            ttft = ttft if ttft is not None else (time.perf_counter() - t0) * 1000
            pieces.append(text)
    return ttft or 0.0, "".join(pieces)


def run_chat_turns(model_name: str, turns: int = 8, turn_tokens: int = 400, answer_tokens: int = 32,
                   threads: int | None = None, n_ctx: int = 8192, reference: bool = True,
                   restore_tokens: int = 0, chat_template: str | None = None,
                   flash_attn: str = "auto") -> ChatTurnsResult:
    """`chat_template`: a Jinja template for both sides, for a model without its own (the 8B shape probe).
    `flash_attn`: as `RuntimeOptions.flash_attn`, on both sides (why it is off by default: docs/kv-cache.md)."""
    from ondevice.machine.autoconfig import default_threads

    if min(turns, turn_tokens, answer_tokens) < 1:
        raise ondevice.InvalidInput("--turns, --turn-tokens and --answer-tokens must be positive")
    if turns * (turn_tokens + answer_tokens + 40) >= n_ctx:
        raise ondevice.InvalidInput(f"{turns} turns of ~{turn_tokens + answer_tokens} tokens do not fit --ctx {n_ctx}")
    threads = threads or default_threads()
    model = ondevice.load(model_name, n_ctx=n_ctx, threads=threads, chat_template=chat_template,
                          flash_attn=flash_attn)
    result = ChatTurnsResult(model.name, threads, model.n_ctx, reuse_align=getattr(model.backend, "reuse_align", 1))
    llm = None
    if reference:
        if model.backend_name != "gguf":
            raise ondevice.UnsupportedOperation("the llama-cpp-python reference needs a GGUF model")
        import llama_cpp

        llm = llama_cpp.Llama(model_path=str(model.ref.path), n_ctx=model.n_ctx, n_batch=min(512, model.n_ctx),
                              n_ubatch=min(512, model.n_ctx), n_threads=threads, n_threads_batch=threads,
                              flash_attn=model.backend.options.flash_attention_enabled(), verbose=False)
        if chat_template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            special = lambda token: llm.detokenize([token], special=True).decode(errors="replace")  # noqa: E731
            llm.chat_handler = Jinja2ChatFormatter(chat_template, eos_token=special(llm.token_eos()),
                                                   bos_token=special(llm.token_bos())).to_chat_handler()
    try:
        ours = [{"role": "system", "content": SYSTEM}]
        theirs = [{"role": "system", "content": SYSTEM}]
        for i, user in enumerate(user_turns(model, turns, turn_tokens), start=1):
            ours.append({"role": "user", "content": user})
            ttft, answer, timings = _ours(model, ours, answer_tokens)
            ours.append({"role": "assistant", "content": answer})
            ref_ttft = None
            if llm is not None:
                theirs.append({"role": "user", "content": user})
                ref_ttft, ref_answer = _reference(llm, theirs, answer_tokens)
                theirs.append({"role": "assistant", "content": ref_answer})
            result.turns.append(Turn(i, timings.prompt_tokens, round(ttft, 1), timings.reused_tokens,
                                     round(ref_ttft, 1) if ref_ttft is not None else None))
    finally:
        if llm is not None:
            llm.close()
    if restore_tokens:
        model = _restore(model, model_name, threads, n_ctx, restore_tokens, answer_tokens, result, chat_template)
    model.close()
    return result


def _restore(model, model_name, threads, n_ctx, history_tokens, answer_tokens, result,
             chat_template=None) -> ondevice.Model:
    """A conversation of about `history_tokens` tokens (canned short answers), then one more turn: cold, and
    after saving, closing and reloading the model."""
    chunks = user_turns(model, max(1, round(history_tokens / 190)), 180)  # ~190 tokens per exchange
    messages = [{"role": "system", "content": SYSTEM}]
    for chunk in chunks:
        messages += [{"role": "user", "content": chunk}, {"role": "assistant", "content": "Noted."}]
    question = "Which of these texts was the longest?"  # a short new turn: its TTFT is the history's cost
    chat = ondevice.Chat(model, messages=messages)
    model.clear_cache()
    cold_ttft, _, timings = _ours(model, messages + [{"role": "user", "content": question}], answer_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        path = chat.save(Path(tmp) / "history.session")
        size = path.stat().st_size
        model.close()
        t0 = time.perf_counter()
        model = ondevice.load(model_name, n_ctx=n_ctx, threads=threads, chat_template=chat_template)
        t1 = time.perf_counter()
        chat = ondevice.Chat.load(path, model)
        t2 = time.perf_counter()
    restored_ttft, _, after = _ours(model, chat.messages + [{"role": "user", "content": question}],
                                    answer_tokens)
    result.restore = Restore(timings.prompt_tokens, round(cold_ttft, 1), round((t1 - t0) * 1000, 1),
                             round((t2 - t1) * 1000, 1), round(restored_ttft, 1), after.reused_tokens, size)
    return model


def format_result(r: ChatTurnsResult) -> str:
    lines = [f"{r.model}, {r.threads} threads, n_ctx {r.n_ctx}", "",
             "| turn | prompt tokens | ours TTFT ms | ours reused | llama-cpp-python TTFT ms |",
             "|---:|---:|---:|---:|---:|"]
    for t in r.turns:
        ref = f"{t.reference_ttft_ms:.0f}" if t.reference_ttft_ms is not None else ""
        lines.append(f"| {t.turn} | {t.prompt_tokens} | {t.ours_ttft_ms:.0f} | {t.ours_reused_tokens} | {ref} |")
    lines.append("")
    if r.reuse_align > 1:
        lines.append(f"ours reuses whole chunks of {r.reuse_align} positions: this model's logits depend on how a "
                     f"prompt is split, so a warm prompt re-evaluates its last partial chunk to answer as a cold start")
    if len(r.turns) > 1:
        lines.append(f"last/first turn TTFT: ours {r.ratio('ours')}x, llama-cpp-python {r.ratio('reference')}x "
                     f"(target: ours <= 1.5x and never slower than llama-cpp-python)")
    if r.restore:
        s = r.restore
        lines.append(f"restart from a saved {s.history_tokens}-token session ({s.session_bytes / 1e6:.1f} MB): "
                     f"TTFT {s.restored_ttft_ms:.0f} ms, {s.restored_reused_tokens} tokens reused (+ load {s.load_ms:.0f} ms, "
                     f"restore {s.restore_ms:.0f} ms) "
                     f"vs cold {s.cold_ttft_ms:.0f} ms")
    return "\n".join(lines)


if __name__ == "__main__":
    from bench.cli import module_alias

    module_alias("chat-turns")
