"""Sampling engines behind one interface (boundary.api.types.Engine), and a per-process cache so a
process that samples many times (a worker, a test session) loads its model once."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from boundary.api.errors import UnknownName
from boundary.api.models import ModelSpec
from boundary.api.types import ENGINES, Engine
from boundary.workers.engines.vllm import VllmEngine  # cheap: vLLM itself is imported when a model loads

EngineFactory = Callable[[ModelSpec, Mapping[str, Any], Path], Engine]


def _vllm(spec: ModelSpec, options: Mapping[str, Any], cache_dir: Path) -> Engine:
    return VllmEngine.load(spec, options, cache_dir)


def _openai(spec: ModelSpec, options: Mapping[str, Any], cache_dir: Path) -> Engine:
    from boundary.workers.engines.openai.engine import OpenAIEngine

    return OpenAIEngine.load(spec, options, cache_dir)


def _hf(spec: ModelSpec, options: Mapping[str, Any], cache_dir: Path) -> Engine:
    from boundary.workers.engines.hf.engine import TransformersEngine

    return TransformersEngine.load(spec, options, cache_dir)


def _echo(spec: ModelSpec, options: Mapping[str, Any], cache_dir: Path) -> Engine:
    from boundary.workers.engines.echo import EchoEngine

    return EchoEngine.load(spec, options, cache_dir)


FACTORIES: dict[str, EngineFactory] = {"vllm": _vllm, "openai": _openai, "hf": _hf, "echo": _echo}
"""The factory of each engine named in ``boundary.api.types.ENGINES`` (the one list of names)."""

MODEL_FREE = frozenset({"echo"})
"""Engines that load nothing: created fresh each time, never evicting the cached model."""

RUNTIME_OPTIONS: dict[str, frozenset[str]] = {"vllm": VllmEngine.RUNTIME_OPTIONS}
"""Per engine, the options set on a loaded engine (``engine.configure``) rather than needing a
new one: a process switching them keeps its model loaded."""

TOKEN_OPTIONS: dict[str, dict[str, Any]] = {"vllm": {"logprobs_mode": "processed_logprobs"}}
"""Per engine, the load options its token-level interface (``engine.token_engine()``, what the
samplers beyond plain need) requires: vLLM returns the sampled tokens' log-probabilities under
the proposal only in ``processed_logprobs`` mode, while plain runs keep its default raw mode (the
model's own log-probability of each sample). A process switching between the two reloads."""

_cached: tuple[str, Engine] | None = None


def check_engine_name(name: str) -> None:
    if name not in ENGINES:
        raise UnknownName("engine", name, ENGINES)


def open_engine(name: str, spec: ModelSpec, options: Mapping[str, Any], cache_dir: Path, *,
                tokens: bool = False) -> Engine:
    """The engine ``name`` serving ``spec``: the one already loaded in this process when the
    model and options are the same, else a new one (the previous one is closed first, so a
    process holds at most one model). ``tokens``: loaded as its token-level interface needs
    (TOKEN_OPTIONS), for a sampler beyond plain."""
    global _cached
    check_engine_name(name)
    if tokens:
        options = {**options, **TOKEN_OPTIONS.get(name, {})}
    if name in MODEL_FREE:
        return FACTORIES[name](spec, options, cache_dir)  # nothing loaded: no need to evict a model
    runtime = {k: v for k, v in options.items() if k in RUNTIME_OPTIONS.get(name, ())}
    load_options = {k: v for k, v in options.items() if k not in runtime}
    key = json.dumps([name, spec.path, spec.gguf is not None, load_options], sort_keys=True, default=str)
    if _cached is not None and _cached[0] == key:
        engine = _cached[1]
        if name in RUNTIME_OPTIONS:
            engine.configure(**runtime)  # type: ignore[attr-defined]
        return engine
    close_cached()
    engine = FACTORIES[name](spec, options, cache_dir)
    _cached = (key, engine)
    return engine


def close_cached() -> None:
    global _cached
    if _cached is not None:
        engine = _cached[1]
        _cached = None
        engine.close()
