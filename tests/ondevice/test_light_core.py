"""`import ondevice` and running a GGUF model need only the core runtime: no torch, transformers or web stack."""

import subprocess
import sys

CHECK = """
import sys, ondevice
with ondevice.load("smollm2-135m", n_ctx=256) as m:
    m.generate("Hi", max_tokens=2)
print(",".join(k for k in ("torch", "transformers", "optimum", "fastapi", "apsw", "onnxruntime_genai")
               if k in sys.modules))
"""


def test_running_a_gguf_model_imports_no_heavy_dependency():
    proc = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
