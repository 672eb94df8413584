"""Value comparison in the judge: EvalPlus's output check, ``allclose`` without numpy, and stdout
against the expected output. Both sides are values the judge decoded itself. Standard library
only (run in the server)."""

from __future__ import annotations

import decimal
import math

if __name__.startswith("boundary."):  # on the host; in the sandbox the modules before this one ran in this namespace
    from boundary.workers.sandbox.candidate import shorten
    from boundary.workers.sandbox.oracles import (
        MBPP_OUTPUT_NOT_NONE_TASKS,
        MBPP_OUTPUT_SET_EQ_TASKS,
        _digit_distance_nums,
        _number,
        _poly,
        _set_equal,
        _surface_area,
    )
    from boundary.workers.sandbox.values import decode_value


def plain_loads(data: bytes) -> object:
    """A value from an untrusted process (``values.decode_value``: plain values built by the
    judge's own code; nothing is imported, called or set as an attribute), or Undecodable."""
    return decode_value(data)


def allclose(out: object, exp: object, rtol: float, atol: float) -> bool:
    """numpy.allclose for numbers and (nested) lists or tuples of numbers, without numpy."""
    if isinstance(exp, (list, tuple)):
        return isinstance(out, (list, tuple)) and len(out) == len(exp) and all(
            allclose(o, e, rtol, atol) for o, e in zip(out, exp)
        )
    if not (_number(out) and _number(exp)):
        return False
    if math.isinf(out) or math.isinf(exp):
        return out == exp
    return abs(out - exp) <= atol + rtol * abs(exp)


def _is_floats(x: object) -> bool:
    if isinstance(x, float):
        return True
    return isinstance(x, (list, tuple)) and bool(x) and all(isinstance(i, float) for i in x)


def evalplus_match(inp: list, out: object, exp: object, atol: float, dataset: str | None, entry: str) -> bool:
    """EvalPlus's output check (``evalplus.eval.unsafe_execute``): ``out == exp``, its special
    oracles, then ``allclose`` with its ``atol`` for floats. ``==`` is safe here: both sides are
    values the judge decoded itself (no ``__eq__`` of the candidate's), and it is what the
    official harnesses use, so ``1.0`` passes where ``1`` is expected and ``0`` where ``False``."""
    exact = out == exp
    if dataset == "mbpp":
        if entry == "are_equivalent":
            exact = True
        elif entry == "sum_div":
            exact = exact or out == 0
        elif entry == "surface_Area":
            exact = exact or (_number(out) and abs(out - _surface_area(*inp)) <= atol)
        elif entry == "digit_distance_nums":
            exact = exact or out == _digit_distance_nums(*inp)
        elif entry in MBPP_OUTPUT_SET_EQ_TASKS:
            exact = _set_equal(out, exp)
        elif entry in MBPP_OUTPUT_NOT_NONE_TASKS:
            exact = (out == exp) if isinstance(out, bool) else (exp == (out is not None))
    if dataset == "humaneval" and entry == "find_zero":
        return _number(out) and abs(_poly(*inp, out)) <= atol
    if atol == 0 and _is_floats(exp):
        atol = 1e-6
    if not exact and atol != 0:
        if type(out) is not type(exp):
            return False
        if isinstance(exp, (list, tuple)) and len(out) != len(exp):  # type: ignore[arg-type]
            return False
        return allclose(out, exp, 1e-07, atol)
    return bool(exact)


def normalize_output(text: str) -> list[str]:
    """Output lines with surrounding whitespace and leading/trailing blank lines removed."""
    return [line.strip() for line in text.strip().splitlines()]


def output_matches(got: str, expected: str) -> bool:
    """Stdout against the expected output: equal line by line after whitespace normalization,
    or token by token where tokens that are both decimal numbers compare by value ("3.0" = "3")."""
    a, b = normalize_output(got), normalize_output(expected)
    if a == b:
        return True
    if len(a) != len(b):
        return False
    for line_a, line_b in zip(a, b):
        tokens_a, tokens_b = line_a.split(), line_b.split()
        if len(tokens_a) != len(tokens_b):
            return False
        for x, y in zip(tokens_a, tokens_b):
            if x == y:
                continue
            try:
                if decimal.Decimal(x) != decimal.Decimal(y):
                    return False
            except (decimal.InvalidOperation, ValueError):
                return False
    return True


def show(value: object) -> str:
    """A short repr with the type: ``3.0 (float)``."""
    try:
        return f"{shorten(repr(value), 120)} ({type(value).__name__})"
    except Exception:  # noqa: BLE001 - a repr must not break a report
        return f"<{type(value).__name__}>"
