"""Short local-news "reports" (3-5 sentences) → a one-sentence summary.

The first sentence carries the headline fact, wrapped in a time phrase and a trailing
detail: "On Monday, a bakery in Lille hired six new workers after a busy winter." The
other 2-4 sentences are filler ("Local newspapers covered the story."; fewer when the
report would pass MAX_REPORT_CHARS). The summary is
the headline's key clause alone: "A bakery in Lille hired six new workers." So the task
is learnable by a tiny model (find the first sentence, drop its frame) while ROUGE still
punishes copying the whole report.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

PROMPT = "Summarise in one sentence:\n"
MAX_REPORT_CHARS = 220  # fillers are dropped past this, so rows fit max_seq_len 224

CITIES = [
    "Lyon", "Lille", "Nantes", "Bordeaux", "Toulouse", "Nice", "Rennes", "Dijon",
    "Leeds", "Bristol", "York", "Dublin", "Hamburg", "Munich", "Vienna", "Zurich",
    "Geneva", "Ghent", "Porto", "Turin", "Milan", "Prague", "Oslo", "Malmo",
]
NUMBERS = ["two", "three", "four", "five", "six", "eight", "ten", "twelve", "fifteen", "twenty"]
# Who the report is about; {city} is filled in.
SUBJECTS = [
    "the {city} city council", "a bakery in {city}", "the {city} football club",
    "the hospital in {city}", "a software company in {city}", "the {city} museum",
    "the public library of {city}", "a primary school in {city}", "the {city} zoo",
    "a family hotel in {city}", "the {city} theatre", "a bike shop in {city}",
]
# What happened; {n} is a number word, {p} a percentage.
EVENTS = [
    "hired {n} new workers", "opened a second site", "raised its prices by {p} percent",
    "cut its prices by {p} percent", "won a national prize", "closed for {n} weeks of repairs",
    "cancelled its summer festival", "received a grant from the region",
    "moved to a larger building", "launched a new website", "named a new director",
    "extended its opening hours", "started a recycling scheme", "bought {n} electric vans",
    "welcomed {n} thousand visitors", "lost an important court case", "reported a record year",
    "signed a deal with a local farm", "planted {n} new trees", "held its first open day",
]
WHEN = [
    "On Monday", "On Tuesday", "On Friday", "Last week", "Yesterday", "This morning",
    "Earlier this month", "On Saturday", "Last month", "",
]
TRAILING = [
    "after a long debate", "despite the bad weather", "for the first time in years",
    "according to a press release", "after a busy winter", "to the surprise of many",
    "after months of planning", "",
]
FILLERS = [
    "The news was shared on social media.", "Some residents welcomed the change.",
    "Others said it came too late.", "A spokesperson gave no further details.",
    "The weather was mild for the season.", "The plan had been discussed for months.",
    "More information is expected next week.", "Local newspapers covered the story.",
    "A similar plan failed last year.", "The mayor thanked everyone involved.",
    "About {crowd} people attended the announcement.", "The building dates from {year}.",
    "Staff were told in a short meeting.", "Several shops nearby stayed open late.",
    "Traffic was slow in the town centre.", "A second meeting is planned for spring.",
]


@dataclass(frozen=True)
class ReportRow:
    text: str
    headline: str   # the first sentence
    answer: str     # its key clause: subject + event


def _capitalise(s: str) -> str:
    return s[:1].upper() + s[1:]


def generate_rows(count: int, seed: int) -> list[ReportRow]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        subject = rng.choice(SUBJECTS).format(city=rng.choice(CITIES))
        event = rng.choice(EVENTS).format(n=rng.choice(NUMBERS), p=rng.choice(range(3, 31)))
        clause = f"{subject} {event}"
        when, trailing = rng.choice(WHEN), rng.choice(TRAILING)
        headline = (f"{when}, {clause}" if when else _capitalise(clause)) + (f" {trailing}." if trailing else ".")
        fillers = [f.format(crowd=rng.choice(range(30, 301, 10)), year=rng.randint(1850, 1990))
                   for f in rng.sample(FILLERS, rng.randint(2, 4))]
        while len(fillers) > 2 and len(" ".join([headline, *fillers])) > MAX_REPORT_CHARS:
            fillers.pop()
        rows.append(ReportRow(text=" ".join([headline, *fillers]), headline=headline,
                              answer=_capitalise(clause) + "."))
    return rows
