"""A benchmark the project generates itself: seeded arithmetic word problems with exact
answers. It needs no data files or network, so the demo runs anywhere; the real benchmarks
are read from a data directory or a dataset id."""

from __future__ import annotations

import random

from boundary.api.types import Problem

SIZE = 200
SEED = 20250418

_TEMPLATES = (
    ("{name} has {a} apples and buys {b} more. How many apples does {name} have now?", lambda a, b, c: a + b),
    ("A shelf holds {a} books. {name} takes away {c} of them. How many books are left on the shelf?",
     lambda a, b, c: a - c),
    ("Each box contains {b} pencils. How many pencils are in {c} boxes?", lambda a, b, c: b * c),
    ("{name} has {a} stickers, gets {b} more, then gives {c} to a friend. How many stickers does {name} have?",
     lambda a, b, c: a + b - c),
    ("There are {a} students and each one needs {c} sheets of paper. How many sheets are needed in total?",
     lambda a, b, c: a * c),
)
_NAMES = ("Ava", "Ben", "Chloe", "Dan", "Emma", "Finn", "Grace", "Hugo", "Iris", "Jack")


def problems(size: int = SIZE, seed: int = SEED) -> list[Problem]:
    """``size`` problems, identical for identical (size, seed)."""
    rng = random.Random(seed)
    out = []
    for i in range(size):
        template, solve = _TEMPLATES[i % len(_TEMPLATES)]
        a = rng.randint(5, 40)
        b = rng.randint(2, 12)
        c = rng.randint(2, min(a - 1, 9))
        question = template.format(name=rng.choice(_NAMES), a=a, b=b, c=c)
        answer = str(solve(a, b, c))
        record = {"id": f"arith/{i}", "problem": question, "answer": answer}
        out.append(Problem(key=f"arith/{i}", question=question, answer=answer, record=record))
    return out
