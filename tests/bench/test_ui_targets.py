"""bench's device-target panel for the web app: the same numbers as `ondevice predict`, as table rows."""

from __future__ import annotations

import pytest

from bench.predict import predict
from bench.ui_targets import PROBE, QUANT, device_targets
from ondevice.errors import InvalidInput


def test_the_panel_is_the_prediction_of_the_chosen_catalog_device():
    panel = device_targets("raspberry-pi-5")
    pred = predict(probe=PROBE, quant=QUANT, device="raspberry-pi-5")
    assert panel["device"] == "raspberry-pi-5"
    assert panel["columns"] == ["target", "needed", "predicted", "result", "margin"]
    assert [row[:4] for row in panel["rows"]] == [[t.name, t.target, t.predicted, "PASS" if t.passed else "FAIL"]
                                                  for t in pred.targets]
    assert "raspberry-pi-5" in {d["name"] for d in panel["devices"]}
    assert "Raspberry Pi 5" in panel["note"]


def test_no_choice_is_the_default_device_and_an_unknown_name_is_refused():
    assert device_targets(None)["device"] == "apple-m2"
    with pytest.raises(InvalidInput, match="unknown device 'nope'"):
        device_targets("nope")
