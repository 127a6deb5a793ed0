"""The web app in a real headless Chromium against a real `ondevice serve smollm2-135m` (with an API key).

Each test fails on any browser console error (the `page` fixture). Screenshots land in docs/ui/.
"""

from __future__ import annotations

import re
import time

import httpx

from tests.ondevice.server.conftest import API_KEY, SYSTEM
from tests.ondevice.server.ui.conftest import screenshot

QUESTION = "When is the tooth cleaning appointment?"   # examples/sample_notes/health.md, line 5 (chunk 3-5)
NO_ANSWER = "What is the capital of Australia?"        # in none of the notes


def open_page(page, name: str) -> None:
    page.click(f"nav button[data-page='{name}']")
    page.wait_for_selector(f"#page-{name}:not([hidden])")


def chat_settings(page, temperature: str, max_tokens: str, system: str = "") -> None:
    page.click("#chat-settings summary")
    page.fill("#chat-temperature", temperature)
    page.fill("#chat-max-tokens", max_tokens)
    page.fill("#chat-system", system)
    page.dispatch_event("#chat-system", "change")


def test_chat_streams_an_answer_and_keeps_the_conversation(page):
    chat_settings(page, "0", "40", SYSTEM)
    # Count separate updates of the answer while it streams: a streamed answer arrives in many pieces.
    page.evaluate("""() => { window.__updates = 0; new MutationObserver(() => window.__updates++)
        .observe(document.getElementById('chat-log'), {childList: true, subtree: true, characterData: true}); }""")
    page.fill("#chat-input", "What is the capital of France?")
    page.press("#chat-input", "Enter")  # Enter sends
    page.wait_for_selector("#chat-log .msg.assistant:not([aria-busy])")
    answer = page.inner_text("#chat-log .msg.assistant .body")
    assert "Paris" in answer
    assert page.evaluate("window.__updates") >= 5
    assert re.fullmatch(r"\d+ ms", page.inner_text("#stat-ttft"))
    assert re.fullmatch(r"[\d.]+ tok/s", page.inner_text("#stat-tps"))
    assert re.match(r"\d+ \(prompt \d+\)", page.inner_text("#stat-tokens"))
    assert "smollm2-135m" in page.inner_text("#model-info") and "cpu" in page.inner_text("#model-info")
    page.mouse.move(0, 0)
    screenshot(page, "chat")
    page.reload()  # the conversation is kept in the browser and reopened
    page.wait_for_selector("#chat-log .msg.assistant")
    assert page.inner_text("#chat-log .msg.user .body") == "What is the capital of France?"
    assert page.inner_text("#chat-log .msg.assistant .body") == answer
    assert page.input_value("#chat-system") == SYSTEM


def test_stop_ends_a_long_answer(page, ui_server):
    page.click("#chat-new")
    chat_settings(page, "0.8", "2000")
    before = ui_server.health()["stats"]
    page.fill("#chat-input", "Write a very long story about a dragon who learns to bake bread.")
    page.click("#chat-send")
    page.wait_for_function("() => Number(document.getElementById('stat-tokens').textContent) >= 5")
    assert page.is_enabled("#chat-stop") and page.is_disabled("#chat-send")
    page.click("#chat-stop")
    page.wait_for_selector("#chat-log .msg.assistant:not([aria-busy]) .route")
    assert page.inner_text("#chat-log .msg.assistant .route") == "stopped"
    assert page.is_enabled("#chat-send") and page.is_disabled("#chat-stop")
    health = ui_server.wait_idle(30)  # the server stopped decoding: idle again, the request counted as cancelled
    assert not health["busy"]
    assert health["stats"]["cancelled"] == before["cancelled"] + 1
    tokens = int(page.inner_text("#stat-tokens"))
    assert 5 <= tokens < 2000

    page.fill("#chat-input", "Now write another long story, about a cat who sails.")
    page.press("#chat-input", "Enter")
    page.wait_for_function("() => Number(document.getElementById('stat-tokens').textContent) >= 3")
    page.keyboard.press("Escape")  # the keyboard's stop
    page.wait_for_function("() => document.querySelectorAll('#chat-log .msg.assistant .route').length == 2")
    assert ui_server.wait_idle(30)["stats"]["cancelled"] == before["cancelled"] + 2


def test_keyboard_reaches_the_pages_and_the_chat_box(page):
    seen = []
    for _ in range(20):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.id || document.activeElement.dataset.page || "
                                  "document.activeElement.tagName"))
        if seen[-1] == "chat-input":
            break
    assert seen[:4] == ["chat", "files", "structured", "device"]
    assert "chat-input" in seen and "chat-new" in seen
    page.keyboard.type("Hello")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "chat-send"
    page.keyboard.press("Shift+Tab")
    for _ in range(len(seen) - 1):
        page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.dataset.page") == "chat"
    for _ in range(3):  # to the "Your device" tab
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("#page-device:not([hidden])")


UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                 && !e.getAttribute('aria-labelledby') && !(e.tagName === 'BUTTON' && e.textContent.trim()))
    .map(e => e.outerHTML)"""


def assert_labelled(page) -> None:
    """Every control on the page (the pages' own and those they created) has a label, aria-label or text."""
    assert page.evaluate(UNLABELLED) == []


def test_every_control_has_a_label(page):
    for name in ("files", "structured", "device", "chat"):
        open_page(page, name)
    page.wait_for_selector("#page-device[data-loaded='1']", state="attached")
    page.wait_for_selector("#targets table", state="attached")
    assert_labelled(page)


def test_index_the_example_notes_and_open_a_citation(page, notes_folder):
    open_page(page, "files")
    page.fill("#index-name", "notes")
    page.fill("#index-folder", str(notes_folder))
    page.click("#index-start")
    page.wait_for_selector("#index-status[data-state='done']", timeout=300_000)  # first use converts MiniLM
    assert "6/6 files" in page.inner_text("#index-status")
    row = page.locator("#index-table tr[data-index='notes'] td")
    assert row.nth(1).inner_text() == str(notes_folder) and row.nth(2).inner_text() == "6"

    page.select_option("#ask-index", "notes")
    page.fill("#ask-question", QUESTION)
    page.click("#ask-send")
    page.wait_for_selector("#ask-citations li a")
    answer = page.inner_text("#ask-answer")
    assert "10:30" in answer or "9 April" in answer, answer
    assert "Question:" not in answer, answer  # an answer, not the prompt repeated
    # The extractive answer (auto, for the 135M model) cites the quoted sentence's own line, not its chunk's 3-5.
    first = page.locator("#ask-citations li a").first
    assert first.inner_text() == "health.md:5"
    first.click()
    page.wait_for_selector("#source-view:not([hidden])")
    assert page.inner_text("#source-title") == "health.md, line 5"
    cited = page.locator("#source-lines .line.cited")
    assert [cited.nth(i).get_attribute("data-line") for i in range(cited.count())] == ["5"]
    assert "Tooth cleaning booked with Dr. Alvarez" in cited.nth(0).inner_text()
    screenshot(page, "files", full_page=True)

    # Re-indexing reads only what changed: one edited note, five unchanged.
    (notes_folder / "garden.txt").write_text((notes_folder / "garden.txt").read_text() + "\nThe roses need pruning.\n")
    page.click("#index-table tr[data-index='notes'] button:has-text('Re-index')")
    page.wait_for_function("() => document.getElementById('index-status').textContent.includes('1 changed')")
    assert "5 unchanged" in page.inner_text("#index-status")
    assert_labelled(page)  # with the index rows' buttons


def test_a_question_with_no_answer_in_the_files_says_so(page, ui_server, notes_folder):
    headers = {"Authorization": f"Bearer {API_KEY}", "X-Ondevice-UI": "1"}
    httpx.post(f"{ui_server.base_url}/ui/api/indexes", json={"name": "sample", "folder": str(notes_folder)},
               headers=headers, timeout=30).raise_for_status()
    deadline = time.monotonic() + 300
    while httpx.get(f"{ui_server.base_url}/ui/api/indexes/sample/job", headers=headers,
                    timeout=30).json()["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    open_page(page, "files")
    page.wait_for_selector("#ask-index option[value='sample']", state="attached")
    page.select_option("#ask-index", "sample")
    page.fill("#ask-question", NO_ANSWER)
    page.click("#ask-send")
    page.wait_for_selector("#ask-answer.notfound")
    assert page.inner_text("#ask-answer").startswith("Not found in your files.")
    assert page.locator("#ask-citations li").count() == 0


def test_the_device_page_shows_the_targets_table(page):
    open_page(page, "device")
    page.wait_for_selector("#targets table.targets tbody tr")
    rows = page.locator("#targets table.targets tbody tr")
    names = [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())]
    assert names == ["params", "decode >= 10 tok/s", "decode >= 20 tok/s", "fits 8 GB", "fits 16 GB"]
    assert set(page.locator("#targets td.pass, #targets td.fail").all_inner_texts()) <= {"PASS", "FAIL"}
    page.wait_for_selector("#page-device[data-loaded='1']", state="attached")
    assert "Memory bandwidth" in page.inner_text("#doctor-table")
    assert "smollm2-135m" in page.inner_text("#models-table")
    page.select_option("#target-device-0", "raspberry-pi-5")
    page.wait_for_function("() => document.querySelector('#targets p.muted').textContent.includes('Raspberry Pi 5')")
    page.select_option("#target-device-0", "apple-m2")
    page.wait_for_function("() => document.querySelector('#targets p.muted').textContent.includes('Apple M2')")
    screenshot(page, "device", full_page=True)


def test_structured_output_shows_the_parsed_result_and_tool_calls_as_cards(page):
    open_page(page, "structured")
    page.click("#struct-run")
    page.wait_for_selector("#struct-result .card.parsed")
    parsed = page.inner_text("#struct-result .card.parsed")
    assert all(f'"{key}"' in parsed for key in ("name", "age", "city"))
    page.check("#mode-tools")
    page.click("#struct-run")
    page.wait_for_selector("#struct-result .card.tool-call")
    card = page.inner_text("#struct-result .card.tool-call")
    assert "get_weather" in card and '"city"' in card
    assert_labelled(page)  # with the tool card's result box
    screenshot(page, "structured")


def test_markdown_renders_code_and_never_runs_html(page):
    result = page.evaluate("""async () => {
        const { render } = await import('/ui/markdown.js');
        const node = render('# Title\\n\\nSome **bold** and `x<y`.\\n\\n```python\\nprint("<b>")\\n```\\n\\n' +
            '<img src=x onerror="window.__pwned=1"> [click](javascript:alert(1)) [site](https://example.org)');
        return { html: node.innerHTML, imgs: node.querySelectorAll('img, script').length,
                 links: [...node.querySelectorAll('a')].map(a => a.href), code: node.querySelector('pre code').textContent,
                 lang: node.querySelector('pre code').className, pwned: window.__pwned || 0 };
    }""")
    assert result["imgs"] == 0 and result["pwned"] == 0
    assert "&lt;img src=x" in result["html"] and "<strong>bold</strong>" in result["html"]
    assert "<code>x&lt;y</code>" in result["html"]
    assert result["code"] == 'print("<b>")' and result["lang"] == "language-python"
    assert result["links"] == ["https://example.org/"]
