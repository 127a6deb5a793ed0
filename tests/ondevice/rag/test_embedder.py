"""The throughput path (length-bucketed batches, tuned session) gives the plain path's vectors."""

from __future__ import annotations

import numpy as np

from tests.ondevice.rag.corpus import write_corpus


def _texts(tmp_path) -> list[str]:
    from ondevice.rag.chunking import chunk_document
    from ondevice.rag.readers import read_document
    from pydoc_data.topics import topics

    write_corpus(tmp_path)
    texts = [p.read_text() for p in sorted(tmp_path.rglob("*.md"))]
    for name in ("if", "for", "lambda", "typesseq"):  # long prose and code-like chunks, some over 256 pieces
        path = tmp_path / f"{name}.txt"
        path.write_text(topics[name])
        texts += [c.text for c in chunk_document(read_document(path, path.read_bytes()))]
    return texts


def test_bucketed_encoder_gives_the_plain_loops_vectors(embedder, tmp_path):
    import ondevice
    from ondevice.rag.embedder import BucketedEncoder

    assert isinstance(embedder.model, BucketedEncoder)  # the default path for an ONNX encoder on the CPU
    texts = _texts(tmp_path)
    lengths = embedder.model.token_counts(texts)
    assert min(lengths) < 40 and max(lengths) == 256  # short notes and truncated long chunks both present
    plain = ondevice.load("minilm-l6", threads=2)
    try:
        reference = plain.embed(texts)  # the generic backend: batches of 32 padded to their longest text
    finally:
        plain.close()
    ours = embedder.embed(texts)
    assert ours.shape == reference.shape
    cosine = (ours * reference).sum(axis=1)
    assert cosine.min() >= 0.999, cosine.min()
    # order is kept: each text's nearest reference vector is its own
    assert (np.argmax(ours @ reference.T, axis=1) == np.arange(len(texts))).all()


def test_batches_are_sorted_by_length_and_keep_the_token_budget(embedder):
    lengths = [5, 200, 7, 180, 6, 256, 30, 31]
    batches = embedder.model.batches(lengths)
    flat = [int(i) for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths)
    for batch in batches:
        assert max(lengths[i] for i in batch) * len(batch) <= embedder.model.batch_tokens or len(batch) == 1
