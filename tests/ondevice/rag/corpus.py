"""A corpus of personal notes with planted facts and distractors, and questions about it.

Two kinds of question, so that neither retriever alone is enough:
- paraphrase questions share (almost) no content words with the note that answers them, while a few other notes
  share a word but not the meaning: BM25 misses, vectors find them;
- identifier questions hinge on a rare code or number in one of a dozen notes written from the same template:
  to an embedding they all look alike, BM25 finds the code.
"""

from __future__ import annotations

import json
from pathlib import Path

PARAPHRASE = [
    # (file, note text, question, answer)
    ("health/dentist.md", "# Teeth\n\nTooth cleaning booked with Dr. Alvarez for Tuesday 9 April at 10:30.\n"
     "Bring the insurance card; parking behind the clinic.\n",
     "When is my next visit to the dental hygienist?", "9 April"),
    ("car/winter.md", "# Automobile\n\nThe tyres were swapped for winter rubber at Kwik Fit on Saturday.\n"
     "The mechanic charged 84 pounds including balancing.\n",
     "How much did it cost to put snow tires on?", "84 pounds"),
    ("home/lease.txt", "Landlord emailed: rent goes up to 1,150 a month from June.\n"
     "Deposit stays the same. Sign the addendum by the end of May.\n",
     "How expensive will my flat become after the increase?", "1,150"),
    ("pets/biscuit.md", "# Biscuit\n\nBiscuit the beagle gets his heartworm tablet on the first day of every month,\n"
     "wrapped in a bit of cheese so he swallows it.\n",
     "How often does my puppy need his pill?", "first day of every month"),
    ("home/network.rst", "Guest network\n=============\n\nRouter passphrase for the guest wifi: sunflower-meadow-42.\n"
     "The main network is not shared.\n",
     "What password lets visitors get online at my place?", "sunflower-meadow-42"),
    ("family/mum.md", "# Mum\n\nMum turns 67 on 3 August. She keeps hinting at the blue cardigan from Marks,\n"
     "size medium.\n",
     "What gift would my mother like?", "blue cardigan"),
]

# Notes that share a word with a paraphrase question but are about something else.
DISTRACTORS = [
    ("misc/museum.md", "# Museum\n\nNext visit to the science museum: the dinosaur hall reopens in autumn.\n"),
    ("misc/electric.txt", "The electricity cost this winter was much higher than last year; check the meter.\n"),
    ("misc/spanish.md", "# Spanish class\n\nThe present tense of irregular verbs: ser, ir, tener. Practise daily.\n"),
    ("misc/password-manager.md", "# Password manager\n\nMove all logins into the manager and turn on two-factor.\n"),
    ("misc/flat-hunting.md", "# Flat hunting\n\nThe flat on Elm Road had no light; the one on Birch Lane was damp.\n"),
    ("misc/gym.txt", "Gym membership price increase announced for next year; consider the pool instead.\n"),
]

ITEMS = ["cordless drill", "standing desk", "espresso grinder", "hiking boots", "noise-cancelling headphones",
         "robot vacuum", "cast iron skillet", "bike helmet", "e-reader", "air purifier", "office chair",
         "label printer"]
CODES = ["58821", "73104", "40417", "91266", "26638", "65590", "17342", "84075", "39951", "50783", "62219", "98406"]
# identifier questions ask about these receipts (index into ITEMS/CODES)
ASKED = [0, 3, 5, 7, 9, 11]

FILLER = [
    ("recipes/bread.md", "# Sourdough\n\nFeed the starter the night before. 500 g flour, 350 g water, 10 g salt.\n\n"
     "## Baking\n\nBake covered at 250 C for 20 minutes, then uncovered for 25 minutes.\n"),
    ("travel/lisbon.md", "# Lisbon trip\n\nTram 28 is crowded before ten. The pastry shop in Belem opens at eight.\n"),
    ("work/standup.txt", "Standup notes: migrate the billing service, review the onboarding doc, fix flaky tests.\n"),
    ("garden/plan.md", "# Garden\n\nPlant garlic in October. Tomatoes go against the south fence in May.\n"),
    ("books/reading.md", "# Reading list\n\nThe Left Hand of Darkness, Middlemarch, and a history of the printing press.\n"),
]


def receipt(i: int) -> str:
    return (f"# Receipt\n\nOrder {CODES[i]}: {ITEMS[i]}, delivered on a weekday morning.\n"
            f"Warranty {1 + i % 3} years; keep the box until the return window closes.\n")


def write_corpus(root: Path) -> list[dict]:
    """Write the notes under `root`; return the QA items (question, answer, source, kind)."""
    files = {f: text for f, text, _, _ in PARAPHRASE}
    files.update(dict(DISTRACTORS))
    files.update(dict(FILLER))
    files.update({f"receipts/order-{CODES[i]}.md": receipt(i) for i in range(len(CODES))})
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    qa = [{"question": q, "answer": a, "source": f, "kind": "paraphrase"} for f, _, q, a in PARAPHRASE]
    qa += [{"question": f"Which purchase was number {CODES[i]}?", "answer": ITEMS[i],
            "source": f"receipts/order-{CODES[i]}.md", "kind": "identifier"} for i in ASKED]
    return qa


def write_qa(path: Path, qa: list[dict]) -> Path:
    path.write_text("".join(json.dumps({k: item[k] for k in ("question", "answer", "source")}) + "\n"
                            for item in qa))
    return path
