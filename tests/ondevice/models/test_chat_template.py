"""`chat_template=` gives chat() a template of the caller's: a base model without one can chat, a model with one
renders the caller's instead; a template that is not Jinja is refused at load time in one line."""

from __future__ import annotations

import pytest

import ondevice
from ondevice import InvalidInput

PLAIN = ("{% for m in messages %}{{ m['role'] | upper }}: {{ m['content'] }}\n{% endfor %}"
         "{% if add_generation_prompt %}ASSISTANT:{% endif %}")


@pytest.fixture(scope="module")
def gemma_with_template():
    model = ondevice.load("gemma3-270m", n_ctx=256, threads=2, chat_template=PLAIN)
    yield model
    model.close()


def test_a_base_model_chats_with_the_callers_template(gemma_with_template):
    messages = [{"role": "user", "content": "Count: one, two, three,"}]
    assert gemma_with_template.backend.render_chat(messages) == "USER: Count: one, two, three,\nASSISTANT:"
    result = gemma_with_template.chat(messages, max_tokens=6)
    # the same tokens as generate() on the rendered prompt: the template is the only thing chat() adds
    assert result.text == gemma_with_template.generate("USER: Count: one, two, three,\nASSISTANT:",
                                                       max_tokens=6).text


def test_without_a_template_a_base_model_still_says_use_generate():
    model = ondevice.load("gemma3-270m", n_ctx=64, threads=2)
    try:
        with pytest.raises(ondevice.UnsupportedOperation, match="no chat template"):
            model.chat([{"role": "user", "content": "hi"}], max_tokens=2)
    finally:
        model.close()


@pytest.mark.parametrize("template, message", [("{% for m in messages %}", "not valid Jinja"),
                                               ("", "non-empty Jinja template")])
def test_a_bad_template_is_refused_at_load(template, message):
    with pytest.raises(InvalidInput, match=message):
        ondevice.RuntimeOptions(chat_template=template)


def test_cli_chat_with_a_template_file(tmp_path):
    from click.testing import CliRunner

    from ondevice.cli.main import cli

    template = tmp_path / "plain.jinja"
    template.write_text(PLAIN)
    result = CliRunner().invoke(cli, ["chat", "gemma3-270m", "--ctx", "256", "-t", "2", "-n", "6",
                                      "--chat-template", str(template)], input="Count: one, two, three,\n\n")
    assert result.exit_code == 0, result.output
    model = ondevice.load("gemma3-270m", n_ctx=256, threads=2)
    try:
        expected = model.generate("USER: Count: one, two, three,\nASSISTANT:", max_tokens=6).text
    finally:
        model.close()
    assert expected.strip() and expected in result.output


def test_cli_chat_bad_template_is_one_line_and_exit_code_2(tmp_path):
    from click.testing import CliRunner

    from ondevice.cli.main import cli

    template = tmp_path / "bad.jinja"
    template.write_text("{% if %}")
    result = CliRunner().invoke(cli, ["chat", "gemma3-270m", "--chat-template", str(template)], input="\n")
    assert result.exit_code == 2
    assert "not valid Jinja" in result.output and len(result.output.strip().splitlines()) == 1
