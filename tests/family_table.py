"""The family parity table: `python -m tests.family_table --out docs/families.md` (about 10 minutes on 2 cores).

For every family in tests.tiny_models.FAMILIES: a tiny random model built from a real transformers configuration
(no download), converted to f16 GGUF by llama.cpp's own convert_hf_to_gguf.py (all in one child process), checked
against transformers' logits, quantised to every GGUF type and run, exported to ONNX where onnxruntime-genai's
builder takes it. Our own converter's rows follow for the architectures it handles. tests/quantize/test_families.py
runs the same rows as tests.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

TEXT = "The quick brown fox jumps over the lazy dog. Functions return values; classes define objects."
OURS = {"llama": "llama", "qwen2": "qwen2", "gemma3": "gemma3"}  # families our converter (quantize/gguf_arch) takes


def family_tokens(folder: Path) -> list[int]:
    """The test text as the family's own tokenizer splits it (about 20 tokens)."""
    if (folder / "tokenizer.model").exists():
        import sentencepiece as spm

        return [1] + spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model")).encode(TEXT)
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json")).encode(TEXT).ids


def build(families, work: Path, progress=print) -> dict[str, Path]:
    from tests.tiny_models import make_family_hf

    folders, failures = {}, {}
    for family in families:
        progress(f"building tiny {family}")
        try:
            folders[family] = make_family_hf(family, work / family)
        except Exception as exc:  # transformers cannot build this family's config: a row saying so
            failures[family] = f"transformers: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return folders, failures


def convert_all(folders: dict[str, Path], work: Path) -> dict[str, object]:
    """{family: f16 GGUF path or the OnDeviceError}, all through llama.cpp's converter in one child process."""
    from quantize.llama_convert import convert_many

    names = list(folders)
    results = convert_many([(folders[f], work / f"{f}-f16.gguf") for f in names], "f16")
    return {f: (r.path if hasattr(r, "path") else r) for f, r in zip(names, results)}


def main(argv: list[str] | None = None) -> int:
    from quantize.family_parity import FamilyParity, family_parity
    from tests.tiny_models import FAMILIES

    parser = argparse.ArgumentParser(prog="python -m tests.family_table", description=__doc__)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--out", type=Path, help="write the markdown table here (between the markers)")
    parser.add_argument("--no-onnx", action="store_true")
    parser.add_argument("--rows", type=Path, help="also append each row as a JSON line here, as it is measured")
    parser.add_argument("--from-rows", type=Path, help="only write the table from rows measured earlier (--rows)")
    args = parser.parse_args(argv)
    if args.from_rows:
        import json

        latest = {}  # a family measured again (--families X --rows same file) replaces its earlier row
        for line in args.from_rows.read_text().splitlines():
            if line.strip():
                row = FamilyParity(**json.loads(line))
                latest[(row.family, row.converter)] = row
        rows = list(latest.values())
        return _write(rows, args, "(assembled from rows measured by `--rows`)")
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    start = time.perf_counter()
    rows: list[FamilyParity] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folders, failures = build(args.families, work, say)
        rows += [FamilyParity(f, "?", "-", error=why) for f, why in failures.items()]
        for row in rows:
            _save(row, args.rows)
        say("converting with llama.cpp's convert_hf_to_gguf.py")
        converted = convert_all(folders, work)
        for family, folder in folders.items():
            say(f"parity: {family}")
            f16 = converted[family]
            if not isinstance(f16, Path):
                import json

                arch = json.loads((folder / "config.json").read_text())["architectures"][0]
                rows.append(FamilyParity(family, arch, "llama.cpp", error=str(f16).split(": ", 1)[-1][:200]))
                _save(rows[-1], args.rows)
                continue
            rows.append(family_parity(family, folder, f16, family_tokens(folder), work, "llama.cpp",
                                      onnx=not args.no_onnx))
            _save(rows[-1], args.rows)
            f16.unlink()
        for family in [f for f in args.families if f in OURS]:
            from quantize.hf_to_gguf import convert_hf_to_gguf

            say(f"parity: {family} (our converter)")
            f16 = convert_hf_to_gguf(folders[family], work / f"{family}-ours-f16.gguf", "f16").path
            rows.append(family_parity(family, folders[family], f16, family_tokens(folders[family]), work,
                                      "ondevice", quants=(), onnx=False))
            _save(rows[-1], args.rows)
    return _write(rows, args, f"in {time.perf_counter() - start:.0f} s")


def _save(row, path: Path | None) -> None:
    if path is not None:
        import json
        from dataclasses import asdict

        with path.open("a") as fh:
            fh.write(json.dumps(asdict(row)) + "\n")


def _write(rows, args, how: str) -> int:
    from quantize.family_parity import table

    text = table(rows)
    print(text)
    if args.out:
        doc = args.out.read_text() if args.out.exists() else ""
        begin, end = "<!-- family-table:begin -->", "<!-- family-table:end -->"
        stamp = (f"Made by `python -m tests.family_table --out {args.out}` {how} "
                 f"(llama-cpp-python 0.3.36's llama.cpp, transformers 4.57.6, onnxruntime-genai 0.11.4).")
        block = f"{begin}\n{stamp}\n\n{text}\n{end}"
        doc = doc[:doc.index(begin)] + block + doc[doc.index(end) + len(end):] if begin in doc else doc + block + "\n"
        args.out.write_text(doc)
    return 0 if all(r.passed or r.converter == "ondevice" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
