"""Ask questions of a folder of personal files, fully offline, then watch the index update incrementally.

    python examples/rag_personal_files.py                      # uses examples/sample_notes (copied to a temp dir)
    python examples/rag_personal_files.py --notes ~/notes --question "When is the dentist?"

Steps: index the folder (notes, a PDF and a DOCX) with the local embedding model; ask questions with the local
LLM, streaming each answer and listing its numbered citations; then edit one file and re-index, which re-reads and
re-embeds only that file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from ondevice.rag import Index

SAMPLE = Path(__file__).parent / "sample_notes"
QUESTIONS = [
    "When is the tooth cleaning appointment?",
    "What is the car insurance policy number?",
    "Where do we stay in Lisbon?",
    "What is the capital of Australia?",  # not in the notes: the answer says so instead of inventing one
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notes", type=Path, default=SAMPLE, help="folder to index (copied first, then edited)")
    parser.add_argument("--question", action="append", help="question to ask (repeatable)")
    parser.add_argument("--model", default="smollm2-135m", help="LLM that writes the answers")
    parser.add_argument("--embed-model", default=None, help="embedding model (default minilm-l6)")
    parser.add_argument("--max-tokens", type=int, default=120)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        notes = Path(tmp) / "notes"
        shutil.copytree(args.notes, notes)  # we edit a file below; never touch the original
        with Index(Path(tmp) / "notes.sqlite", embed_model=args.embed_model) as index:
            summary = index.add([notes])
            print(f"indexed {summary.added} files into {summary.total_chunks} chunks "
                  f"({summary.embedded} embeddings, {summary.embeddings_per_s:.0f}/s); "
                  f"could not parse: {[f.path for f in summary.failed] or 'none'}")

            import ondevice

            home = os.getcwd()
            os.chdir(notes)  # citations are printed relative to the working folder
            with ondevice.load(args.model, n_ctx=2048) as llm:
                for question in args.question or QUESTIONS:
                    print(f"\nQ: {question}\nA: ", end="", flush=True)
                    answer = index.ask(question, model=llm, max_tokens=args.max_tokens,
                                       on_text=lambda piece: print(piece, end="", flush=True))
                    print()
                    for citation in answer.citations:
                        print(f"   {citation}")
            os.chdir(home)

            # Edit one file: only it is re-read and re-embedded on the next run.
            edited = next(p for p in sorted(notes.rglob("*.md")))
            edited.write_text(edited.read_text() + "\nAdded later: the spare key is under the blue flowerpot.\n")
            summary = index.add([notes])
            print(f"\nafter editing {edited.name}: {summary.updated} updated, {summary.unchanged} unchanged, "
                  f"{summary.embedded} chunks re-embedded")
            hit = index.search("where is the spare key", k=1)[0]
            print(f"search 'where is the spare key' -> {hit.path.replace(str(notes) + '/', '')}:{hit.span}")


if __name__ == "__main__":
    main()
