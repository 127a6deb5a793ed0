"""The multi-turn TTFT benchmark: every turn after the first reuses the previous turns from the cache, on ours and
on the llama-cpp-python reference alike; a base model chats through `--chat-template plain`."""

from __future__ import annotations

from click.testing import CliRunner

from bench.chat_turns import format_result, run_chat_turns
from ondevice.cli.main import cli


def test_later_turns_reuse_the_history_and_the_reference_runs_beside():
    result = run_chat_turns("gemma3-270m", turns=3, turn_tokens=40, answer_tokens=4, threads=2, n_ctx=512,
                            chat_template="{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                                          "{% if add_generation_prompt %}assistant:{% endif %}")
    first, *later = result.turns
    assert first.ours_reused_tokens == 0
    for previous, turn in zip(result.turns, later):
        # the previous turn's prompt is still in the cache (its answer may re-tokenize, and exact reuse evaluates
        # the last shared prompt token again, or, where the model needs aligned chunks, the last partial chunk:
        # ondevice.backends.cache.exact_reuse)
        assert turn.ours_reused_tokens >= (previous.prompt_tokens - 1) // result.reuse_align * result.reuse_align
        assert turn.ours_reused_tokens % result.reuse_align == 0
        assert turn.prompt_tokens > previous.prompt_tokens
    assert all(t.reference_ttft_ms and t.ours_ttft_ms > 0 for t in result.turns)
    assert "last/first turn TTFT: ours" in format_result(result)


def test_unreadable_template_file_is_one_line_and_exit_code_2(tmp_path):
    result = CliRunner().invoke(cli, ["bench", "chat-turns", "gemma3-270m", "--chat-template",
                                      str(tmp_path / "missing.jinja")])
    assert result.exit_code == 2
    err = result.stderr.strip()
    assert err.startswith("error: cannot read --chat-template") and "\n" not in err
