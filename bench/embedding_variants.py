"""Other forms of the embedding model for `ondevice rag bench --embedding --variants ...`: the same MiniLM with
its weights stored or computed another way, each built once into a temporary folder and run through our length-
bucketed path, or through llama.cpp. They answer "would another form of the same model embed faster at the same
vectors?" (docs/rag.md, "Embedding throughput", third pass); none is used by the runtime.

Variant names: `acc-N` (the shipped int8 model with MatMulNBits `accuracy_level` N: 0/1 compute in fp32, 4 in
int8), `fp32` (the model exported without quantisation), `qB-bS` (weights quantised to B bits in blocks of S),
`gguf-T` (llama.cpp's converter to GGUF type T, f16 or q8_0, run by llama-cpp-python with our tokens).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

VARIANT_PREFIXES = ("acc-", "fp32", "q4-", "q8-", "gguf-")


def is_model_variant(name: str) -> bool:
    return name.startswith(VARIANT_PREFIXES)


def build_runner(name: str, shipped: Path, hf_dir: Path, work: Path, threads: int):
    """An `embed(texts) -> unit vectors` for variant `name`, built under `work` (a temporary folder)."""
    from ondevice.rag.embedder import BucketedEncoder, SessionSettings

    if name.startswith("gguf-"):
        return _gguf_runner(name.split("-", 1)[1], shipped, hf_dir, work, threads)
    folder = work / name
    if name.startswith("acc-"):
        import onnx

        shutil.copytree(shipped, folder)
        model = onnx.load(str(shipped / "model.onnx"))
        for node in model.graph.node:
            for attribute in node.attribute:
                if attribute.name == "accuracy_level":
                    attribute.i = int(name.split("-")[1])
        onnx.save(model, str(folder / "model.onnx"))
    else:
        fp32 = _fp32(hf_dir, work)
        if name == "fp32":
            folder = fp32
        else:  # qB-bS
            from quantize.onnx_weights import quantize_matmuls

            bits, block = name[1:].split("-b")
            folder.mkdir()
            quantize_matmuls(fp32 / "model.onnx", folder, bits=int(bits), block_size=int(block), accuracy_level=4,
                             external_data=False)
            for extra in ("tokenizer.json", "config.json"):
                shutil.copy2(fp32 / extra, folder / extra)
    return BucketedEncoder(folder, SessionSettings(threads=threads)).embed


def _fp32(hf_dir: Path, work: Path) -> Path:
    folder = work / "fp32"
    if not folder.exists():
        from quantize.onnx_export import export_encoder

        export_encoder(hf_dir, folder, quant="fp32")
    return folder


def _gguf_runner(outtype: str, shipped: Path, hf_dir: Path, work: Path, threads: int, ubatch: int = 512):
    """llama.cpp over a GGUF of the same model: our tokenizer's ids (cap 256), sorted by length, packed into
    batches of up to `ubatch` tokens, one sequence per text, mean pooling."""
    import llama_cpp
    from tokenizers import Tokenizer

    from ondevice.rag.embedder import SEQUENCE_CAP
    from quantize.llama_convert import convert_with_llama_cpp

    path = work / f"minilm-{outtype}.gguf"
    convert_with_llama_cpp(hf_dir, path, outtype=outtype)
    llm = llama_cpp.Llama(model_path=str(path), embedding=True, n_ctx=ubatch, n_batch=ubatch, n_ubatch=ubatch,
                          n_threads=threads, n_threads_batch=threads, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                          verbose=False)
    tokenizer = Tokenizer.from_file(str(shipped / "tokenizer.json"))
    tokenizer.enable_truncation(SEQUENCE_CAP)
    dim = llama_cpp.llama_model_n_embd(llm.model)

    def embed(texts):
        ids = [e.ids for e in tokenizer.encode_batch(list(texts))]
        out = np.zeros((len(texts), dim), np.float32)
        order = list(np.argsort([len(i) for i in ids]))
        batch = llama_cpp.llama_batch_init(ubatch, 0, 64)
        try:
            while order:
                seqs, n = [], 0
                while order and n + len(ids[order[0]]) <= ubatch and len(seqs) < 64:
                    seqs.append(order.pop(0))
                    n += len(ids[seqs[-1]])
                k = 0
                for s, text in enumerate(seqs):
                    for pos, token in enumerate(ids[text]):
                        batch.token[k], batch.pos[k], batch.n_seq_id[k], batch.logits[k] = token, pos, 1, True
                        batch.seq_id[k][0] = s
                        k += 1
                batch.n_tokens = n
                memory = llama_cpp.llama_get_memory(llm.ctx)
                if memory:
                    llama_cpp.llama_memory_clear(memory, True)
                if llama_cpp.llama_decode(llm.ctx, batch) != 0:
                    raise RuntimeError("llama_decode failed")
                for s, text in enumerate(seqs):
                    v = np.ctypeslib.as_array(llama_cpp.llama_get_embeddings_seq(llm.ctx, s), shape=(dim,)).copy()
                    out[text] = v / np.linalg.norm(v)
        finally:
            llama_cpp.llama_batch_free(batch)
        return out

    return embed
