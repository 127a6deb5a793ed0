"""Render chat messages with a model's own Jinja chat template (the HF `chat_template` convention)."""

from __future__ import annotations

import json
from pathlib import Path

from ondevice.errors import InvalidInput, UnsupportedOperation


def render(template: str, messages: list[dict], bos_token: str = "", eos_token: str = "", **variables) -> str:
    """Format `messages` with `template`, ending with the assistant's generation prompt. `variables` are further
    template variables, as HF `apply_chat_template` passes them (`tools=[...]`, `date_string=...`)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter  # a sandboxed renderer matching transformers'

    try:
        formatter = Jinja2ChatFormatter(template, eos_token=eos_token, bos_token=bos_token)
        return formatter(messages=messages, **variables).prompt
    except Exception as exc:  # the template's own raise_exception (e.g. roles must alternate)
        raise InvalidInput(f"chat template rejected the messages: {exc}") from None


def check_template(template: str) -> None:
    """Refuse a template that is not a string or does not parse as Jinja (one clear line, at load time)."""
    if not isinstance(template, str) or not template.strip():
        raise InvalidInput(f"chat_template must be a non-empty Jinja template string, got {template!r}")
    import jinja2

    try:
        jinja2.Environment().parse(template)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidInput(f"chat_template is not valid Jinja (line {exc.lineno}): {exc.message}") from None


def _token_text(value) -> str:
    if isinstance(value, dict):  # {"content": "<s>", ...} form of tokenizer_config.json
        return str(value.get("content", ""))
    return str(value or "")


def template_from_folder(folder: Path, required: bool = True) -> tuple[str, str, str]:
    """(template, bos, eos) from an HF-style folder: chat_template.jinja or tokenizer_config.json (template "" when
    the folder has none and `required` is False)."""
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    template = config.get("chat_template")
    jinja = folder / "chat_template.jinja"
    if not template and jinja.exists():
        template = jinja.read_text()
    if not template and required:
        raise UnsupportedOperation(f"{folder} has no chat template (a base model?): use generate()")
    return template or "", _token_text(config.get("bos_token")), _token_text(config.get("eos_token"))
