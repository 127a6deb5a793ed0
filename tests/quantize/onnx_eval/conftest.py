"""Session fixtures for the ONNX / evaluation / report tests: each expensive artefact is made once per run.

Evaluation runs on few short windows (ctx 256, 2 windows = 254 scored tokens) to stay inside the time budget; the
statistics are the same code path as a full run.
"""

from __future__ import annotations

import pytest

EVAL_CTX = 256
EVAL_CHUNKS = 2


def _exported(hf_dir, tmp_path_factory, quant: str, n_ctx: int, **options):
    """Export SmolLM2's HF folder to onnx:<quant> and yield it loaded (closed at the end of the session)."""
    import ondevice
    from quantize.onnx_export import export_onnx_llm

    result = export_onnx_llm(hf_dir, tmp_path_factory.mktemp(f"onnx-{quant}") / f"smollm2-{quant}", quant, **options)
    model = ondevice.load(result.path, n_ctx=n_ctx)
    yield model
    model.close()


@pytest.fixture(scope="session")
def smollm2_onnx_int4(smollm2_hf_dir, tmp_path_factory):
    """SmolLM2 exported to onnx:int4 (its HF folder was de-quantised from the embedded GGUF)."""
    yield from _exported(smollm2_hf_dir, tmp_path_factory, "int4", 512)


@pytest.fixture(scope="session")
def smollm2_report(smollm2_f16_gguf, tmp_path_factory):
    """quantize() of the f16 GGUF to Q4_K_M and Q8_0, evaluated against it (the f16 is its own reference)."""
    from quantize import quantize

    out = tmp_path_factory.mktemp("report")
    return quantize(smollm2_f16_gguf, ["gguf:Q4_K_M,Q8_0"], out, evaluate=True, window=EVAL_CTX,
                    max_chunks=EVAL_CHUNKS, decode_speed=False, progress=False)


@pytest.fixture(scope="session")
def smollm2_onnx_fp32(smollm2_hf_dir, tmp_path_factory):
    """SmolLM2 exported to onnx:fp32: the export without quantisation, to compare with the f16 GGUF."""
    yield from _exported(smollm2_hf_dir, tmp_path_factory, "fp32", 256)


@pytest.fixture(scope="session")
def smollm2_onnx_int8(smollm2_hf_dir, tmp_path_factory):
    """SmolLM2 exported to onnx:int8 (weight-only 8-bit MatMulNBits)."""
    yield from _exported(smollm2_hf_dir, tmp_path_factory, "int8", 512)


@pytest.fixture(scope="session")
def smollm2_onnx_int4_wls(smollm2_onnx_int4):
    """SmolLM2 as onnx:int4-wls (least-squares scale and float minimum per block, quantize/onnx_wls.py): the default
    onnx:int4, so the same export."""
    return smollm2_onnx_int4
