"""A static embedding model distilled locally from the shipped MiniLM: one vector per word piece, no network.

The recipe is model2vec's (Tulkens & van Dongen, 2024): run every vocabulary entry through the sentence encoder on
its own, reduce the vectors with PCA, and down-weight frequent pieces with SIF weights. model2vec estimates a
piece's frequency from its vocabulary rank (Zipf); we count the pieces in the English documentation that ships
with CPython (`pydoc_data.topics`), which doubled paraphrase recall@5 here (0.17 -> 0.38, docs/rag.md). A text's embedding is then the mean of its pieces' rows: no transformer at query or index time,
thousands of chunks per second on one core. We write it ourselves rather than use the `model2vec` package because
model2vec 0.10 requires huggingface-hub >= 1.0, which transformers 4.57.6 (pinned for optimum-onnx) does not
accept; the recipe is a few array operations on top of the encoder and tokenizer we already ship.

The distilled table is cached in the model store (`converted/<model>-static-<dims>/`), written atomically, and
made on first use (480 s on the shared 2-core machine, load average ~17: 30,522 three-piece passes through
MiniLM). Its vectors are not comparable with MiniLM's: an index built with
`--embed-model minilm-l6-static` records that name and must be queried with it. Recall is lower than MiniLM's
(docs/rag.md), so it is an opt-in fast first pass, not the default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

STATIC_SUFFIX = "-static"
RECIPE = "2"          # part of the cache folder's name: a new recipe distils again
DIMS = 256            # PCA dimensions kept (model2vec's default)
SIF_COEFFICIENT = 1e-4
MAX_PIECES = 512      # pieces per text: cheap here, so longer than the encoder's cap


def _static_dir(base_name: str) -> Path:
    import hashlib

    import ondevice
    from ondevice.models.store import store_dir

    ref = ondevice.resolve(base_name)
    key = hashlib.sha256(str(ref.path).encode()).hexdigest()[:12]
    return store_dir() / "converted" / f"{Path(str(ref.alias or ref.path)).name}-{key}-static{RECIPE}-{DIMS}"


def distill(base_name: str, dest: Path, threads: int | None = None, batch: int = 1024) -> Path:
    """Distil `base_name` (an ONNX sentence encoder the store can load) into a static table under `dest`."""
    from ondevice.files import atomic_dir
    from ondevice.rag.bucketed import BucketedEncoder, SessionSettings

    import ondevice

    model = ondevice.load(base_name, threads=threads)
    backend = model._backend
    folder = Path(backend.ref.path)
    model.close()
    encoder = BucketedEncoder(folder, SessionSettings(threads=threads))
    tokenizer = encoder._tokenizer
    vocab = tokenizer.get_vocab()
    size = max(vocab.values()) + 1
    cls_id, sep_id = vocab.get("[CLS]", 101), vocab.get("[SEP]", 102)
    ids = np.arange(size)
    vectors = np.zeros((size, 0), np.float32)
    for start in range(0, size, batch):
        chunk = ids[start:start + batch]
        seq = np.stack([np.full(len(chunk), cls_id), chunk, np.full(len(chunk), sep_id)], axis=1).astype(np.int64)
        out = encoder._run(seq, np.ones_like(seq))
        vectors = out if not vectors.size else np.concatenate([vectors, out])
    encoder.close()
    # PCA (centre, keep the top DIMS directions), then SIF weights from the pieces' frequency in English prose
    centred = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ vt[:DIMS].T
    weights = SIF_COEFFICIENT / (SIF_COEFFICIENT + piece_frequencies(tokenizer, size))
    table = (reduced * weights[:, None]).astype(np.float32)
    with atomic_dir(dest) as staging:
        np.save(staging / "embeddings.npy", table)
        (staging / "tokenizer.json").write_text((folder / "tokenizer.json").read_text())
        (staging / "static.json").write_text(json.dumps({"source": base_name, "dims": DIMS, "recipe":
                                                        "per-piece encoder output, PCA, SIF(pydoc counts)"}))
    return dest


def piece_frequencies(tokenizer, size: int) -> np.ndarray:
    """Each word piece's share of the pieces in CPython's documentation (add-one smoothed)."""
    from pydoc_data.topics import topics

    counts = np.zeros(size)
    for text in topics.values():
        for start in range(0, len(text), 5000):
            np.add.at(counts, tokenizer.encode(text[start:start + 5000], add_special_tokens=False).ids, 1)
    return (counts + 1) / (counts.sum() + size)


class StaticEmbedder:
    """Mean of the word pieces' rows of a distilled table, L2-normalised."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        self.table = np.load(Path(folder) / "embeddings.npy")
        self._tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(MAX_PIECES)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        out = np.zeros((len(texts), self.table.shape[1]), np.float32)
        lengths = np.array([len(e.ids) for e in encodings])
        rows = np.flatnonzero(lengths)
        if len(rows):  # one gather and one segmented sum for the whole batch
            ids = np.fromiter((i for r in rows for i in encodings[r].ids), dtype=np.int64, count=int(lengths.sum()))
            starts = np.concatenate([[0], np.cumsum(lengths[rows])[:-1]])
            out[rows] = np.add.reduceat(self.table[ids], starts, axis=0) / lengths[rows, None]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.clip(norms, 1e-12, None)

    def close(self) -> None:
        pass


def load_static(base_name: str, threads: int | None = None) -> StaticEmbedder:
    """The static table distilled from `base_name`, distilling it first when the store has none."""
    folder = _static_dir(base_name)
    if not (folder / "embeddings.npy").exists():
        distill(base_name, folder, threads)
    return StaticEmbedder(folder)
