"""The engine registry: one list of names (boundary.api.types.ENGINES), and a factory for each."""

from __future__ import annotations

import pytest

from boundary.api.errors import UnknownName
from boundary.api.types import ENGINES
from boundary.workers.engines import FACTORIES, check_engine_name


def test_every_engine_name_has_a_factory() -> None:
    assert tuple(FACTORIES) == ENGINES


def test_an_unknown_engine_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownName, match=r"^unknown engine 'tensorrt' \(known: vllm, openai, hf, echo\)$"):
        check_engine_name("tensorrt")
    for name in ENGINES:
        check_engine_name(name)
