"""`ondevice run` and `ondevice chat`."""

from __future__ import annotations

import sys

import click

import ondevice
from ondevice.cli.common import (err_console, json_option, kv_type_option, print_json, runtime_options,
                                  sampling_options)


@click.command("run")
@click.argument("model")
@click.argument("prompt")
@click.option("--max-tokens", "-n", type=int, default=128, show_default=True)
@sampling_options
@click.option("--stop", multiple=True, help="Stop string (repeatable).")
@click.option("--system", default=None, help="System prompt (chat models).")
@click.option("--raw", is_flag=True, help="Send PROMPT as-is instead of through the chat template.")
@click.option("--schema", "schema_file", default=None, metavar="FILE",
              help="JSON Schema file the answer must follow ('json': any JSON object); see docs/structured-output.md.")
@click.option("--speculative", type=click.Choice(["auto", "off", "lookup"]), default="off", show_default=True,
              help="Lookup decoding: draft from the prompt and answer, verify in one batch (docs/speculative.md).")
@json_option(help="Print text, tokens and timings as JSON.")
@kv_type_option
@runtime_options
def run_command(model, prompt, max_tokens, sampling, stop, system, raw, schema_file, speculative, as_json, kv_type,
                n_ctx, threads, device):
    """Answer PROMPT with MODEL, streaming to stdout.

    Chat models get PROMPT as a user message through their chat template; base models (no template) or --raw
    complete the text directly.
    """
    from ondevice.decoding.structured import load_schema, schema_grammar

    from ondevice.decoding.request import build_request

    schema = schema_grammar(load_schema(schema_file)) if schema_file else None  # bad schema: exit 2 before loading
    build_request(prompt=prompt or " ", max_tokens=max_tokens, stop=list(stop), **sampling)  # bad values: exit 2 now
    with ondevice.load(model, n_ctx=n_ctx, threads=threads, device=device, speculative=speculative,
                       kv_type=kv_type) as m:
        kwargs = dict(max_tokens=max_tokens, stop=list(stop), schema=schema, **sampling)
        use_chat = m.info.has_chat_template and not raw
        messages = ([{"role": "system", "content": system}] if system else []) + \
            [{"role": "user", "content": prompt}]
        call = (lambda **kw: m.chat(messages, **kw)) if use_chat else (lambda **kw: m.generate(prompt, **kw))
        if as_json:
            result = call(**kwargs)
            print_json({"model": m.name, "backend": m.backend_name, "device": m.device, **result.to_dict()})
            return
        stream = call(stream=True, **kwargs)
        for piece in stream:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()  # the answer's last line before the timing line on stderr
        t = stream.result.timings
        err_console.print(f"[dim]{t.completion_tokens} tokens, {t.decode_tokens_per_s:.1f} tok/s, "
                          f"TTFT {t.ttft_ms:.0f} ms ({m.backend_name} on {m.device})[/dim]")


@click.command("chat")
@click.argument("model", default=ondevice.DEFAULT_MODEL)
@click.option("--system", default=None, help="System prompt.")
@click.option("--max-tokens", "-n", type=int, default=256, show_default=True)
@sampling_options
@click.option("--session", "session_file", type=click.Path(dir_okay=False), default=None,
              help="Resume the conversation saved in this file (created if missing; saved after each turn).")
@click.option("--chat-template", "template_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A Jinja chat template file to use instead of the model's own (e.g. for a base model).")
@kv_type_option
@runtime_options
def chat_command(model, system, max_tokens, sampling, session_file, template_file, kv_type, n_ctx, threads, device):
    """Interactive chat with history. Empty line or Ctrl-D ends; Ctrl-C stops the current answer."""
    from pathlib import Path

    from ondevice.decoding.request import build_request

    build_request(prompt=" ", max_tokens=max_tokens, **sampling)  # bad values: one line, exit 2, before loading
    template = Path(template_file).read_text(encoding="utf-8", errors="replace") if template_file else None
    if session_file is not None:  # a path it cannot be saved to fails now, not after the first answer
        from ondevice.session import check_save_path

        check_save_path(session_file)
    with ondevice.load(model, n_ctx=n_ctx, threads=threads, device=device, chat_template=template,
                       kv_type=kv_type) as m:
        resume = session_file is not None and Path(session_file).exists()
        chat = ondevice.Chat.load(session_file, m) if resume else ondevice.Chat(m, system=system)
        err_console.print(f"[dim]{m.name} ({m.backend_name} on {m.device}, ctx {m.n_ctx}). Empty line to quit."
                          + (f" Resumed {len(chat.messages)} messages." if resume else "") + "[/dim]")
        while True:
            try:
                line = input("> ")
            except EOFError:
                break
            if not line.strip():
                break
            stream = chat.send(line, max_tokens=max_tokens, stream=True, **sampling)
            try:
                for piece in stream:
                    sys.stdout.write(piece)
                    sys.stdout.flush()
            except KeyboardInterrupt:
                stream.close()
                sys.stdout.write(" [stopped]")
            sys.stdout.write("\n")
            if session_file is not None:
                chat.save(session_file)
