"""The OpenVINO execution provider, for real: the `openvino` extra's plugin EP (onnxruntime-ep-openvino) registered
into the stock onnxruntime, used by the encoder (onnxruntime) and LLM (onnxruntime-genai) paths, reported by
`Model.device` and `doctor`, and a CPU-provider fallback with one clear warning when it cannot take a request.

The plugin offers Intel CPUs, GPUs and NPUs only: on other CPUs (AMD, ARM) it registers and offers no device, so the
tests that need a device skip with that reason and the fallback tests run instead; on Intel it is the other way.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import ondevice
from ondevice.machine.autoconfig import onnx_providers
from ondevice.machine.providers import CPU, ProviderFallback, plugin_providers

OV = "OpenVINOExecutionProvider"
TEXTS = ["The cat sat on the mat.", "Vector search finds the nearest notes.", "OpenVINO compiles ONNX graphs.",
         "Paris is the capital of France."]

OV_HERE = OV in onnx_providers()  # the plugin offers a device here, or this onnxruntime build has OpenVINO built in
PLUGIN = plugin_providers().get(OV)

needs_plugin = pytest.mark.skipif(PLUGIN is None, reason="the `openvino` extra (onnxruntime-ep-openvino) is not "
                                  "installed, or this onnxruntime has OpenVINO compiled in")
needs_device = pytest.mark.skipif(not OV_HERE, reason=f"{OV} offers no device here: "
                                  f"{PLUGIN.note if PLUGIN else 'not installed'}")
without_device = pytest.mark.skipif(OV_HERE or PLUGIN is None, reason=f"{OV} runs here (or is not installed); the "
                                    f"no-device fallback is for CPUs the plugin does not serve")


@pytest.fixture(scope="module")
def encoder_fp32(tmp_path_factory):
    """all-MiniLM-L6-v2 exported to fp32 ONNX (int8 MatMulNBits differs across providers by design)."""
    from ondevice.models.store import resolve
    from quantize.onnx_export import export_encoder

    return export_encoder(resolve("minilm-l6").path, tmp_path_factory.mktemp("ov") / "minilm-fp32", quant="fp32")


@pytest.fixture(scope="module")
def cpu_vectors(encoder_fp32):
    with ondevice.load(encoder_fp32, device="cpu", threads=2) as model:
        return model.embed(TEXTS)


def _load_warned(model, device, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = ondevice.load(model, device=device, threads=2, **kw)
    return loaded, [str(w.message) for w in caught if issubclass(w.category, ProviderFallback)]


@needs_plugin
def test_the_plugin_registers_with_the_real_onnxruntime():
    import onnxruntime as ort
    import onnxruntime_ep_openvino

    plugin = plugin_providers()[OV]
    assert plugin.registered and plugin.version == "1.8.1"
    assert plugin.library == onnxruntime_ep_openvino.get_library_path()
    offered = {d for d in ort.get_ep_devices() if d.ep_name == OV}
    assert len(plugin.devices) == len(offered)  # what we report is what onnxruntime itself lists
    if not plugin.devices:
        cpu = next(d.device for d in ort.get_ep_devices() if d.ep_name == CPU)
        assert cpu.vendor in plugin.note and "Intel" in plugin.note  # says why: the plugin serves Intel only
    assert plugin_providers() is plugin_providers()  # registered once per process


@needs_plugin
def test_a_plugin_listed_by_onnxruntime_is_still_used_by_device_mocked_listing_as_on_intel(monkeypatch):
    """On an Intel CPU onnxruntime lists a registered plugin EP among its available providers (as
    "OpenVINOExecutionProvider" and "OpenVINOExecutionProvider.AUTO"); a session given only that name silently ran
    on the CPU provider (seen on an Intel Xeon). The listing is mocked here (this CPU gets no OpenVINO device):
    the session must still be given the plugin's device, and the provider list must name the plugin once."""
    import onnxruntime as ort

    from ondevice.machine.providers import available_providers, session_options_for

    listed = [*ort.get_available_providers(), OV, f"{OV}.AUTO"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: listed)
    names = available_providers()
    assert f"{OV}.AUTO" not in names and names.count(OV) == (1 if PLUGIN.usable else 0)
    options = ort.SessionOptions()
    if PLUGIN.usable:
        assert session_options_for(OV, options) == []  # added by device, not passed by name
    else:
        with pytest.raises(ValueError, match="offers no"):  # the device path, which finds no device here
            session_options_for(OV, options)


@needs_plugin
def test_doctor_json_lists_the_plugin():
    from click.testing import CliRunner

    from ondevice.cli.main import cli

    result = CliRunner().invoke(cli, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (plugin,) = [p for p in report["onnxruntime_plugins"] if p["name"] == OV]
    assert plugin["package"] == "onnxruntime-ep-openvino" and plugin["registered"] is True
    if plugin["devices"]:
        assert OV in report["onnxruntime_providers"]
    else:
        assert OV not in report["onnxruntime_providers"]
        assert any(OV in h for h in report["hazards"])


@needs_device
def test_embeddings_on_openvino_match_the_cpu_provider(encoder_fp32, cpu_vectors):
    model, fallbacks = _load_warned(encoder_fp32, "openvino")
    with model:
        assert model.device == OV and model.device_note == "" and not fallbacks
        vectors = model.embed(TEXTS)
    assert vectors.shape == cpu_vectors.shape
    assert np.min(np.sum(vectors * cpu_vectors, axis=1)) > 0.999


@needs_device
def test_auto_takes_openvino_for_an_accelerator_not_for_the_cpu_alone(encoder_fp32):
    # The plugin's CPU device is the same silicon as the CPU provider (and slower on int8/int4 graphs): auto takes
    # OpenVINO when it offers a GPU or NPU, or when this onnxruntime build has it compiled in.
    accelerator = PLUGIN is None or bool(set(PLUGIN.devices) - {"CPU"})
    with ondevice.load(encoder_fp32, device="auto", threads=2) as model:
        assert model.device == (OV if accelerator else CPU)


@without_device
def test_openvino_without_a_device_falls_back_to_cpu_with_a_message(encoder_fp32, cpu_vectors):
    model, fallbacks = _load_warned(encoder_fp32, "openvino")
    with model:
        assert model.device == CPU
        assert len(fallbacks) == 1 and "offers no device" in fallbacks[0] and CPU in fallbacks[0]
        assert model.device_note == fallbacks[0]
        np.testing.assert_allclose(model.embed(TEXTS), cpu_vectors, atol=1e-6)
    with ondevice.load(encoder_fp32, device="auto", threads=2) as model:
        assert model.device == CPU  # auto never picks a provider that offers nothing


def test_a_device_kind_the_plugin_does_not_offer_falls_back_to_cpu(encoder_fp32, cpu_vectors):
    offered = PLUGIN.devices if PLUGIN else ["CPU"]  # a built-in OpenVINO: the CPU always, we ask for an NPU
    kind = next((k for k in ("NPU", "GPU", "CPU") if k not in offered), None)
    if kind is None:
        pytest.skip("this machine's OpenVINO offers CPU, GPU and NPU: no kind is missing")
    model, fallbacks = _load_warned(encoder_fp32, f"openvino:{kind.lower()}")
    with model:
        assert model.device == CPU and len(fallbacks) == 1 and fallbacks[0].startswith(f"{OV} not used")
        np.testing.assert_allclose(model.embed(TEXTS), cpu_vectors, atol=1e-6)


def test_the_llm_path_runs_on_openvino_or_says_why_not(tiny_onnx_fp32_dir):
    """onnxruntime-genai: the same logits on the requested provider as on the CPU one (OpenVINO may compute in bf16
    on CPUs that have it, so close, not equal); when OpenVINO cannot run it here (no device, or genai cannot drive
    the plugin) the model says so in one warning and runs on the CPU provider."""
    with ondevice.load(tiny_onnx_fp32_dir, device="cpu", n_ctx=64) as cpu:
        tokens = cpu.tokenize("The function returns the value of")
        expected = cpu.logits(tokens)
    model, fallbacks = _load_warned(tiny_onnx_fp32_dir, "openvino", n_ctx=64)
    with model:
        if model.device == CPU:
            assert len(fallbacks) == 1 and model.device_note == fallbacks[0]
        else:
            assert model.device == OV and not fallbacks
        logits = model.logits(tokens)
        assert model.generate("The function returns", max_tokens=4, temperature=0).finish_reason in ("stop", "length")
    assert logits.shape == expected.shape
    assert np.corrcoef(logits.ravel(), expected.ravel())[0, 1] > 0.999


def test_the_cli_prints_a_fallback_as_one_warning_line(tiny_onnx_fp32_dir):
    from click.testing import CliRunner

    from ondevice.cli.main import cli

    offered = PLUGIN.devices if PLUGIN else ["CPU"]
    kind = next((k for k in ("NPU", "GPU") if k not in offered), None)
    if kind is None:
        pytest.skip("this machine's OpenVINO offers both a GPU and an NPU: no kind is missing")
    result = CliRunner().invoke(cli, ["run", str(tiny_onnx_fp32_dir), "The function", "--device", f"openvino:{kind.lower()}",
                                      "--max-tokens", "2", "--ctx", "64"])
    assert result.exit_code == 0, result.output
    warning_lines = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning_lines) == 1 and f"{OV} not used, running on {CPU}" in warning_lines[0]
    assert "Traceback" not in result.stderr
