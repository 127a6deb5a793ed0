"""`ondevice.build_request`: the one request every front end builds, checked once; and the samplers that honour it.

The new sampling values (min_p, logit_bias, frequency/presence/repeat penalties) go end to end through the Python
API on the real GGUF model and through NumPy's `LogitsSampler` (the ONNX path), by the same rules.
"""

from __future__ import annotations

import numpy as np
import pytest

import ondevice
from ondevice.errors import InvalidInput
from ondevice.decoding.sampling import LogitsSampler, SamplingParams

CATS = [{"role": "user", "content": "Tell me about cats in one sentence."}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def test_build_request_checks_once_and_names_the_field():
    request = ondevice.build_request(messages=CATS, max_tokens=8, top_k=40, min_p=0.1, logit_bias={"5": -100})
    assert request.is_chat and request.params.top_k == 40 and request.params.logit_bias == {5: -100.0}
    for bad, param in [({"top_p": 1.5}, "top_p"), ({"min_p": -0.1}, "min_p"), ({"logit_bias": {"x": 1}}, "logit_bias"),
                       ({"frequency_penalty": 2.5}, "frequency_penalty"), ({"repeat_penalty": 0}, "repeat_penalty"),
                       ({"max_tokens": 0}, "max_tokens"), ({"temprature": 0.5}, "temprature")]:
        with pytest.raises(InvalidInput) as caught:
            ondevice.build_request(messages=CATS, **bad)
        assert caught.value.param == param
    with pytest.raises(InvalidInput):
        ondevice.build_request(messages=CATS, prompt="both")
    with pytest.raises(InvalidInput):
        ondevice.build_request(prompt="tools need a chat", tools=TOOLS)


def test_top_p_zero_is_greedy_and_none_means_the_default():
    params = ondevice.build_request(prompt="x", top_p=0, temperature=0.9, seed=None).params
    assert params.greedy and params.top_p == 1.0 and params.seed is None


def test_deprecated_functions_become_tools():
    request = ondevice.build_request(messages=CATS, functions=[TOOLS[0]["function"]],
                                     function_call={"name": "get_weather"})
    assert request.legacy_functions and request.with_tools
    with pytest.raises(InvalidInput):
        ondevice.build_request(messages=CATS, functions=[TOOLS[0]["function"]], tools=TOOLS)


def _pick(params: SamplingParams, rows: list[np.ndarray]) -> list[int]:
    """The tokens LogitsSampler picks over a fixed sequence of logits rows."""
    rows_iter = iter(rows)
    current = {}

    def logits():
        return current["row"]

    sampler = LogitsSampler(params, logits)
    picks = []
    for row in rows_iter:
        current["row"] = row.copy()
        picks.append(sampler.sample())
    return picks


def test_the_numpy_sampler_applies_bias_then_penalties_then_greedy():
    row = np.array([5.0, 4.9, 1.0, -1.0])
    assert _pick(SamplingParams(max_tokens=3), [row] * 3) == [0, 0, 0]
    assert _pick(SamplingParams(max_tokens=3, logit_bias={0: -100}), [row] * 3) == [1, 1, 1]
    # frequency: 5.0 - 1 x 0.2 = 4.8 < 4.9 after one use of token 0, then 4.9 - 0.2 = 4.7 < 4.8
    assert _pick(SamplingParams(max_tokens=3, frequency_penalty=0.2), [row] * 3) == [0, 1, 0]
    # repeat: a used positive logit is divided (5.0 / 1.1 = 4.55 < 4.9); presence subtracts once per used token
    assert _pick(SamplingParams(max_tokens=2, repeat_penalty=1.1), [row] * 2) == [0, 1]
    assert _pick(SamplingParams(max_tokens=3, presence_penalty=0.5), [row] * 3) == [0, 1, 0]


def test_min_p_leaves_only_tokens_near_the_top():
    row = np.array([3.0, 2.9, -5.0, -6.0])
    draws = {_pick(SamplingParams(max_tokens=1, temperature=5.0, min_p=0.5, seed=s), [row])[0] for s in range(40)}
    assert draws == {0, 1}


def test_gguf_honours_the_new_values_at_temperature_zero(smollm2):
    plain = smollm2.chat(CATS, max_tokens=16)
    first = plain.tokens[0]
    assert smollm2.chat(CATS, max_tokens=16, logit_bias={first: -100}).tokens[0] != first
    repeat = CATS  # its greedy answer uses "a" twice in 24 tokens: a penalty on repeats changes it
    base = smollm2.chat(repeat, max_tokens=24).text
    for field in ("frequency_penalty", "presence_penalty"):
        assert smollm2.chat(repeat, max_tokens=24, **{field: 2.0}).text != base
    assert smollm2.chat(repeat, max_tokens=24, repeat_penalty=1.8).text != base
    assert smollm2.chat(CATS, max_tokens=16, temperature=1.0, top_k=1, seed=3).text == plain.text
    with pytest.raises(InvalidInput, match="vocabulary"):
        smollm2.chat(CATS, max_tokens=4, logit_bias={10 ** 7: 1})


def test_the_closing_guard_stays_out_of_a_text_answer_under_tools(smollm2):
    weather = [{"role": "user", "content": "What is the weather like in London right now?"}]
    request = ondevice.build_request(messages=weather, tools=TOOLS, tool_choice="none", max_tokens=16,
                                     backend=smollm2.backend)
    constrained = smollm2.run(request)
    free = smollm2.generate(smollm2.render_chat(request.messages), max_tokens=16)
    assert constrained.finish_reason == "length"
    assert constrained.text == free.text


def test_the_router_speaks_the_same_request(smollm2):
    router = ondevice.Router(smollm2, smollm2, policy="privacy")
    assert router.chat(CATS, max_tokens=8).text == smollm2.chat(CATS, max_tokens=8).text
    parsed = router.chat(CATS, max_tokens=48, schema={"type": "object", "properties": {"a": {"type": "string"}},
                                                      "required": ["a"]})
    assert isinstance(parsed.parsed, dict) and "a" in parsed.parsed
    called = router.chat(CATS, max_tokens=48, tools=TOOLS, tool_choice="required")
    assert called.routed_to == "local" and called.tool_calls and called.tool_calls[0].name == "get_weather"
