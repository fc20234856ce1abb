"""Grade-school word problems with one or two operations (+, -, ×) → a number.

"Sam has 12 marbles. He buys 5 more and gives 3 to Emma. How many marbles does he have
now?" → "14". Every row keeps the arithmetic it was written from (`expression`, e.g.
"12 + 5 - 3", numbers in the order the text gives them), so a test or a reader can
recompute the answer independently of the code that produced it. Operands are small and
answers always positive, so a tiny model has a chance at the one-operation problems.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

PROMPT = "Solve. Answer with a number only.\n"

NAMES = {
    "Sam": "he", "Tom": "he", "Leo": "he", "Omar": "he", "Hugo": "he", "Ben": "he",
    "Lucas": "he", "Paul": "he", "Emma": "she", "Lucy": "she", "Mia": "she", "Zoe": "she",
    "Anna": "she", "Nadia": "she", "Clara": "she", "Julie": "she",
}
ITEMS = ["apples", "marbles", "stickers", "cookies", "pencils", "cards", "shells", "stamps",
         "balloons", "coins"]


@dataclass(frozen=True)
class ProblemTemplate:
    text: str                              # {a} {b} {c} appear in this order
    expression: str                        # the same numbers, same order, Python precedence
    solve: Callable[[int, int, int], int]
    ranges: tuple                          # (lo, hi) for a, b, c


TEMPLATES = [
    # one operation
    ProblemTemplate("{name} has {a} {items}. {Pron} finds {b} more. How many {items} does {pron} have now?",
                    "{a} + {b}", lambda a, b, c: a + b, ((2, 30), (2, 30), (0, 0))),
    ProblemTemplate("{name} has {a} {items} and gives {b} to {friend}. How many {items} does {name} have left?",
                    "{a} - {b}", lambda a, b, c: a - b, ((5, 40), (2, 20), (0, 0))),
    ProblemTemplate("{name} buys {a} bags of {items}. Each bag holds {b} {items}. How many {items} does {pron} buy?",
                    "{a} * {b}", lambda a, b, c: a * b, ((2, 9), (2, 12), (0, 0))),
    ProblemTemplate("A book has {a} pages. {name} has read {b} of them. How many pages are left to read?",
                    "{a} - {b}", lambda a, b, c: a - b, ((20, 120), (5, 60), (0, 0))),
    ProblemTemplate("{name} reads {a} pages a day for {b} days. How many pages does {pron} read in total?",
                    "{a} * {b}", lambda a, b, c: a * b, ((2, 15), (2, 9), (0, 0))),
    ProblemTemplate("{name} has {a} coins and {friend} has {b} coins. How many coins do they have together?",
                    "{a} + {b}", lambda a, b, c: a + b, ((2, 50), (2, 50), (0, 0))),
    ProblemTemplate("There are {a} rows of chairs with {b} chairs in each row. How many chairs are there?",
                    "{a} * {b}", lambda a, b, c: a * b, ((2, 12), (2, 12), (0, 0))),
    ProblemTemplate("{name} had {a} {items}. Now {pron} has {b} left. How many {items} did {pron} lose?",
                    "{a} - {b}", lambda a, b, c: a - b, ((5, 40), (1, 39), (0, 0))),
    # two operations
    ProblemTemplate("{name} has {a} {items}. {Pron} buys {b} more and gives {c} to {friend}. "
                    "How many {items} does {pron} have now?",
                    "{a} + {b} - {c}", lambda a, b, c: a + b - c, ((2, 30), (2, 20), (2, 20))),
    ProblemTemplate("{name} buys {a} packs of {b} {items}. {Pron} already had {c}. "
                    "How many {items} does {pron} have now?",
                    "{a} * {b} + {c}", lambda a, b, c: a * b + c, ((2, 6), (2, 10), (1, 20))),
    ProblemTemplate("{name} has {a} coins and spends {b} coins a day for {c} days. How many coins are left?",
                    "{a} - {b} * {c}", lambda a, b, c: a - b * c, ((20, 90), (2, 9), (2, 7))),
    ProblemTemplate("A book has {a} pages. {name} reads {b} pages on Monday and {c} pages on Tuesday. "
                    "How many pages are left?",
                    "{a} - {b} - {c}", lambda a, b, c: a - b - c, ((30, 150), (5, 40), (5, 40))),
    ProblemTemplate("{name} picks {a} apples and {friend} picks {b} apples. They eat {c} of them. "
                    "How many apples are left?",
                    "{a} + {b} - {c}", lambda a, b, c: a + b - c, ((2, 30), (2, 30), (1, 10))),
    ProblemTemplate("{name} reads {a} pages a day for {b} days, then {c} more pages. "
                    "How many pages does {pron} read in all?",
                    "{a} * {b} + {c}", lambda a, b, c: a * b + c, ((2, 12), (2, 7), (1, 20))),
    ProblemTemplate("{name} has {a} boxes with {b} {items} in each and gives away {c}. "
                    "How many {items} are left?",
                    "{a} * {b} - {c}", lambda a, b, c: a * b - c, ((2, 8), (2, 10), (1, 15))),
    ProblemTemplate("{name} has {a} red bags and {b} blue bags. Each bag holds {c} {items}. "
                    "How many {items} are there?",
                    "({a} + {b}) * {c}", lambda a, b, c: (a + b) * c, ((2, 6), (2, 6), (2, 9))),
]


@dataclass(frozen=True)
class ProblemRow:
    text: str
    expression: str   # e.g. "12 + 5 - 3"
    operations: int
    answer: str       # the number only, e.g. "14"


def generate_rows(count: int, seed: int) -> list[ProblemRow]:
    rng = random.Random(seed)
    names = list(NAMES)
    rows = []
    for _ in range(count):
        t = rng.choice(TEMPLATES)
        while True:  # redraw until the answer is a positive count
            a, b, c = (rng.randint(lo, hi) for lo, hi in t.ranges)
            if t.solve(a, b, c) > 0:
                break
        name, friend = rng.sample(names, 2)
        pron = NAMES[name]
        text = t.text.format(a=a, b=b, c=c, name=name, friend=friend, pron=pron, Pron=pron.capitalize(),
                             items=rng.choice(ITEMS))
        expression = t.expression.format(a=a, b=b, c=c)
        operations = sum(map(expression.count, "+-*"))
        rows.append(ProblemRow(text=text, expression=expression, operations=operations,
                               answer=str(t.solve(a, b, c))))
    return rows
