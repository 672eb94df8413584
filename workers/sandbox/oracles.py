"""EvalPlus's special oracles (evalplus/eval/__init__.py and _special_oracle.py, v0.3): the
tasks whose outputs are not compared with ``==``. Standard library only (run in the server)."""

from __future__ import annotations

import math

MBPP_OUTPUT_SET_EQ_TASKS = frozenset({
    "similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly", "larg_nnum",
    "intersection_array", "find_dissimilar", "Diff",
})


MBPP_OUTPUT_NOT_NONE_TASKS = frozenset({"check_str", "text_match_three", "text_starta_endb"})


def _number(x: object) -> bool:
    return type(x) in (int, float, bool)


def _poly(xs: list, x: float) -> float:
    return sum(coeff * math.pow(x, i) for i, coeff in enumerate(xs))


def _surface_area(base_edge: float, height: float) -> int:
    slant_height = math.sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 4 * (base_edge * slant_height) / 2)


def _digit_distance_nums(num1: int, num2: int) -> int:
    a, b = str(num1), str(num2)
    width = max(len(a), len(b))
    return sum(abs(int(x) - int(y)) for x, y in zip(a.zfill(width), b.zfill(width)))


def _set_equal(out: object, exp: object) -> bool:
    try:
        return set(out) == set(exp)  # type: ignore[call-overload]
    except TypeError:
        return False
