"""SamplingParams checks its values once, for every entry point (API, CLI, server); no model needed."""

from __future__ import annotations

import pytest

from ondevice import InvalidInput, SamplingParams


@pytest.mark.parametrize("field, value", [
    ("max_tokens", 0), ("max_tokens", 2.5), ("max_tokens", True), ("temperature", -0.1),
    ("temperature", float("nan")), ("temperature", "hot"), ("top_p", 0), ("top_p", 1.01), ("top_k", -1),
    ("seed", 1.5), ("stop", 5), ("stop", ["ok", 3]), ("ignore_eos", "yes"),
])
def test_bad_values_raise_invalid_input_naming_the_field(field, value):
    with pytest.raises(InvalidInput, match=field) as err:
        SamplingParams(**{field: value})
    assert err.value.param == field


def test_values_are_normalised():
    params = SamplingParams(max_tokens=4, temperature=1, top_p=1, stop="END", seed=7)
    assert params.stop == ["END"] and isinstance(params.temperature, float) and not params.greedy
    assert SamplingParams(stop=None).stop == [] and SamplingParams().greedy
