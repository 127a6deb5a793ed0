"""A held-out paraphrase set: personal notes among long distractor documents, asked about in other words.

Written for issue 27 and kept apart from `corpus.py` so that levers tuned on one can be checked on the other.
Each question names its subject by a synonym or a description of what the note says (saddle for seat, physician
for doctor, ...); several notes share a word with a question they do not answer. The distractors are the 79
documentation topics that ship with CPython (`pydoc_data.topics`), one long file each, so a question competes
with a few hundred chunks of real English prose, as a note does in a real library.

    python -m tests.ondevice.rag.paraphrase DIR     # writes DIR/notes/..., DIR/reference/..., DIR/qa.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

NOTES = [
    # (file, note text, [questions in other words], expected answer text; None: each question carries its own)
    ("bike/fit.md", "# Bike fit\n\nRaised the seat by 8 mm after the fitting at Pedal Works; the knee pain on long rides "
     "is gone. Handlebar height unchanged.\n",
     ["How far did I move the saddle up?"], "8 mm"),
    ("health/gp.md", "# Doctor\n\nDr. Okafor at the Riverside practice wants a blood test before renewing the "
     "thyroid prescription. Fasting from midnight.\n",
     ["What does my physician need done before the medication refill?"], "blood test"),
    ("home/boiler.txt", "Boiler service: Hartley Heating, annual check on 14 October. Engineer said the pressure "
     "valve is wearing and should be replaced next year.\n",
     ["Which part of the furnace is going to need swapping soon?"], "pressure valve"),
    ("kids/school.md", "# School\n\nParents evening for Maya is on Thursday at 17:40 with Mr. Brennan in room 12.\n",
     ["When do I meet my daughter's teacher?"], "17:40"),
    ("money/isa.md", "# Savings\n\nMoved 4,000 into the stocks and shares ISA in March; the rest stays in the easy "
     "access account at 4.1%.\n",
     ["How much did I put into the tax-free investment wrapper?"], "4,000"),
    ("travel/passport.txt", "Passport renewal sent on 2 February by tracked post; the new one should arrive within "
     "three weeks. Old passport number ends 4471.\n",
     ["When did I post off my travel document to be replaced?"], "2 February"),
    ("home/garden-tools.md", "# Shed\n\nThe lawnmower blade was sharpened at the hardware shop on Mill Street for 12 "
     "pounds. Strimmer line is running low.\n",
     ["What did it cost to hone the grass cutter?"], "12 pounds"),
    ("car/insurance.md", "# Car cover\n\nPolicy with Northgate renews 30 November; the no-claims discount is now "
     "five years. Excess 250.\n",
     [("When does my vehicle policy come up for renewal?", "30 November"),
      ("How many claim-free years do I have on the motor policy?", "five years")], None),
    ("food/allergy.md", "# Guests\n\nTom cannot eat peanuts or anything cooked in groundnut oil; Priya is "
     "vegetarian but eats eggs.\n",
     ["Which of my friends has a nut allergy?"], "Tom"),
    ("work/laptop.txt", "IT ticket 5521: the work laptop's battery swells and the trackpad clicks by itself. "
     "Replacement machine promised for next week.\n",
     ["What is wrong with my office notebook computer?"], "battery swells"),
    ("home/plumber.md", "# Leak\n\nThe plumber, Gavin, fixed the dripping kitchen tap with a new washer. Call him on "
     "07700 900123 for the bathroom job.\n",
     ["What number do I ring for the pipe repair man?"], "07700 900123"),
    ("pets/cat.md", "# Pepper\n\nPepper the cat had her booster jabs at the vet on 9 May; next ones due in a year. "
     "Weight 4.2 kg.\n",
     [("When were my kitty's vaccinations?", "9 May"), ("How much does my pet weigh?", "4.2 kg")], None),
    ("music/piano.md", "# Piano\n\nThe tuner comes every six months; last visit in January. Middle C sticks slightly "
     "in damp weather.\n",
     ["How often does the keyboard instrument get adjusted?"], "every six months"),
    ("home/bins.txt", "Recycling is collected on alternate Wednesdays; general waste every Monday. Garden waste "
     "needs the paid green sticker.\n",
     ["Which day is rubbish taken away?"], "Monday"),
    ("health/eyes.md", "# Optician\n\nNew glasses prescription: right -1.75, left -2.00. Frames ordered from "
     "Specsavers, ready in ten days.\n",
     ["What is my spectacle strength for the left eye?"], "-2.00"),
    ("home/wifi-router.md", "# Broadband\n\nFibre contract with Zen ends in August; the router is on the hall shelf, "
     "reboot it if the speed drops.\n",
     ["When does my internet deal finish?"], "August"),
    ("family/grandad.md", "# Grandad\n\nGrandad's care home visiting hours are 2 to 5 pm on weekdays; bring his "
     "crossword book and reading glasses.\n",
     ["When can I see my grandfather at the nursing home?"], "2 to 5 pm"),
    ("travel/rome.md", "# Rome\n\nHotel near Termini, booking reference RMX-3390, check-in from 3 pm, breakfast "
     "included.\n",
     ["What is the confirmation code for my accommodation in Italy?"], "RMX-3390"),
    ("hobby/climbing.md", "# Climbing\n\nBought new rock shoes, size 41, one size down from street shoes; chalk bag "
     "was a present.\n",
     ["What size are my bouldering slippers?"], "41"),
    ("home/chimney.txt", "Chimney swept by Flue Bros in September; they found a jackdaw nest and fitted a cowl "
     "to stop birds.\n",
     ["What did the sweep put on top of the flue?"], "cowl"),
    ("money/pension.md", "# Retirement\n\nWorkplace pension contribution raised to 8% of salary from April; "
     "employer matches up to 5%.\n",
     ["How much of my pay goes into my retirement fund now?"], "8%"),
    ("kids/swim.md", "# Swimming\n\nLeo's swimming lessons are Saturday at 9:15 at the leisure centre; he needs "
     "goggles and a float.\n",
     ["When does my son have his pool class?"], "9:15"),
]

# Added in the second pass on issue 27 (written before any of them was run, in the same style; the 24 questions
# above stay as they were and `set` tells the two apart in the QA items).
MORE_NOTES = [
    ("home/fridge.md", "# Kitchen\n\nThe freezer drawer seal split; the repair company is sending a new gasket, "
     "part number FG-220, on Tuesday.\n",
     ["Which day does the replacement rubber strip for the icebox arrive?"], "Tuesday"),
    ("health/dentist.md", "# Teeth\n\nCheck-up with the hygienist at Bridge Street surgery every six months; the "
     "next scale and polish is booked for 3 March.\n",
     ["When is my next tooth cleaning?"], "3 March"),
    ("car/tyres.txt", "Front tyres replaced at Kwik Fit on the ring road: 205/55 R16, 96 pounds each. Tread on the "
     "rear ones is still 5 mm.\n",
     ["How much did each new wheel rubber cost?"], "96 pounds"),
    ("work/commute.md", "# Getting to work\n\nThe 7:42 train from Hebden Bridge is usually on time; the season "
     "ticket costs 2,310 a year and renews in May.\n",
     ["What does my annual rail pass cost?"], "2,310"),
    ("home/locksmith.md", "# Keys\n\nSpare front door key is with Mrs. Patel at number 14; the back door key is "
     "in the blue tin in the shed.\n",
     ["Which neighbour is looking after my extra house key?"], "Mrs. Patel"),
    ("garden/veg.md", "# Allotment\n\nPlot 23 at Hillside allotments; rent 45 a year, due every October. Water "
     "butts need emptying before the frost.\n",
     ["How much do I pay for my vegetable patch?"], "45 a year"),
    ("pets/dog.md", "# Biscuit\n\nBiscuit's flea and worm treatment is the first of every month; he is 11 kg "
     "and takes the medium dose.\n",
     [("When does my puppy get his parasite medicine?", "first of every month"),
      ("What size dose does the hound need?", "medium dose")], None),
    ("money/mortgage.txt", "Mortgage fixed at 4.39% with Coastal Building Society until July 2027; overpayments of "
     "up to 10% a year are allowed without a fee.\n",
     ["What interest rate is my home loan locked at?"], "4.39%"),
    ("kids/reading.md", "# Homework\n\nAva's spelling test is every Friday; this week's list is on the fridge "
     "door.\n",
     ["On which weekday does my daughter get quizzed on words?"], "Friday"),
    ("home/energy.md", "# Solar\n\nThe roof panels produced 3,150 kWh last year; the inverter warranty runs out "
     "in 2029.\n",
     ["How much electricity did the photovoltaic array generate?"], "3,150 kWh"),
    ("health/physio.md", "# Back\n\nPhysiotherapy for the lower back: exercises twice a day, ten repetitions of "
     "the cat-camel stretch. Review appointment in four weeks.\n",
     ["How many reps of the spine exercise should I do?"], "ten"),
    ("travel/car-hire.txt", "Rental car for Crete picked up at Heraklion airport, confirmation HX-77120, full-to-"
     "full fuel policy.\n",
     ["What is the reservation number for the vehicle I am renting on the Greek island?"], "HX-77120"),
    ("hobby/guitar.md", "# Guitar\n\nRestrung with 10-46 gauge strings; the luthier set the action lower and "
     "fixed the buzzing fret.\n",
     ["Who adjusted my six-string and what did they repair?"], "buzzing fret"),
    ("home/windows.txt", "Window cleaner comes every four weeks on a Thursday, 18 pounds for front and back; pay "
     "him by bank transfer.\n",
     ["How often is the glass washed on the outside of the house?"], "every four weeks"),
    ("family/anniversary.md", "# Anniversary\n\nOur tenth wedding anniversary is on 22 June; table booked at "
     "Lucia's for 8 pm.\n",
     ["Where are we eating to celebrate ten years of marriage?"], "Lucia's"),
    ("work/payslip.md", "# Pay\n\nTax code changed to 1257L in April; the pay rise of 3% shows from the May "
     "payslip.\n",
     ["By how much did my salary go up?"], "3%"),
]

# Notes that share a word with some question but do not answer it.
DISTRACTORS = [
    ("misc/seat-booking.md", "# Train\n\nReserved a window place on the 8:05 to Leeds, coach C.\n"),
    ("misc/insurance-letter.txt", "Home insurance letter: buildings cover renews automatically; check the "
     "contents value.\n"),
    ("misc/utilities.md", "# Utilities\n\nMeter readings due at the end of each quarter; the water bill is direct "
     "debit.\n"),
    ("misc/teacher-gift.md", "# End of term\n\nCollection for a thank-you present closes Friday.\n"),
    ("misc/vet-bill.txt", "Vet bill for the neighbour's dog was split three ways.\n"),
    ("misc/hotel-review.md", "# Review\n\nThe hotel in Bath was noisy; ask for a room at the back next time.\n"),
]


# Questions the library cannot answer: a good answerability check refuses them.
UNANSWERABLE = [
    "What is my blood type?",
    "Which airline am I flying with to Lisbon in June?",
    "How much did the new sofa cost?",
    "What is the name of my neighbour's daughter?",
    "When is the car's MOT test due?",
    "Which dentist did my sister recommend?",
]


def write_library(root: Path) -> list[dict]:
    """Write notes, distractors and reference documents under `root`; return the QA items."""
    from pydoc_data.topics import topics

    files = {f"notes/{name}": text for name, text, _, _ in NOTES + MORE_NOTES}
    files.update({f"notes/{name}": text for name, text in DISTRACTORS})
    for topic, text in sorted(topics.items()):
        files[f"reference/{topic}.txt"] = text
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    qa = []
    for notes, label in ((NOTES, "first"), (MORE_NOTES, "added")):
        for name, _, questions, answer in notes:
            for q in questions:
                question, expected = q if isinstance(q, tuple) else (q, answer)
                qa.append({"question": question, "answer": expected, "source": f"notes/{name}", "set": label})
    return qa


def write_qa(path: Path, qa: list[dict]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in qa))
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1])
    write_qa(out / "qa.jsonl", write_library(out))
