"""The small contracts every part plugs into: problems, sampling, engines, scorers, graders
and the code sandbox. Each is a dataclass or a protocol, so that the engines (vLLM, an
OpenAI-compatible server, transformers), the graders and the sandbox backends are
interchangeable, and the library needs none of them installed to be read or tested.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from boundary.api.errors import ConfigError

Role = Literal["base", "rlvr", "distilled", "instruct", "other"]
ROLES: tuple[str, ...] = ("base", "rlvr", "distilled", "instruct", "other")

Kind = Literal["math", "code"]

ENGINES: tuple[str, ...] = ("vllm", "openai", "hf", "echo")
"""Sampling engines by name (boundary.workers.engines.FACTORIES implements each). ``echo`` returns
deterministic text instantly, for testing and measuring the queue and the database."""


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the form every content hash is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Problem:
    """One benchmark item. ``record`` is the original row, kept whole (tests, metadata)."""

    key: str
    question: str
    answer: str | None
    record: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def content_hash(self) -> str:
        body = canonical_json(
            {"key": self.key, "question": self.question, "answer": self.answer, "record": self.record}
        )
        return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling parameters that, with the model, benchmark, template and engine, identify a run."""

    temperature: float
    top_p: float
    max_tokens: int
    seed: int

    def __post_init__(self) -> None:
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature)):
            raise ConfigError(f"temperature must be a number, got {self.temperature!r}")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if not (0 < self.top_p <= 1):
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if not (0 <= self.seed < 2**31):
            raise ConfigError(f"seed must be in [0, 2^31), got {self.seed}")


@dataclass(frozen=True)
class GenerationRequest:
    """Draw samples ``first_index .. first_index + count - 1`` of one prompt.

    Sample ``i`` must depend only on the prompt, the sampling config and ``seed + i``, never on
    what else is in the batch, so that drawing 8 then 8 more equals drawing 16 at once.
    """

    key: Any
    prompt: str
    seed: int
    first_index: int
    count: int


@dataclass(frozen=True)
class Cost:
    """What drawing one sample cost the engine, counted where the engine returns its work, so
    that samples of every sampler compare on one scale. ``decoded_tokens``: tokens the engine
    generated for it, including rejected proposals and discarded particles; ``prefill_tokens``:
    context tokens (prompt and prefix) sent with its engine calls (an engine with a prefix cache
    recomputes fewer); ``engine_calls``: sequences asked of the engine (a plain sample is 1)."""

    decoded_tokens: int = 0
    prefill_tokens: int = 0
    engine_calls: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.decoded_tokens + other.decoded_tokens, self.prefill_tokens + other.prefill_tokens,
                    self.engine_calls + other.engine_calls)


@dataclass(frozen=True)
class Completion:
    """One sample returned by an engine (or by a sampler built on one).

    ``prompt_tokens`` is the prompt's length in tokens where the engine knows it; ``cost`` is set
    by samplers (a plain sample's cost is derived from ``num_tokens`` and ``prompt_tokens``);
    ``diagnostics`` holds a sampler's own figures for the sample (acceptance rate, resamplings)."""

    key: Any
    index: int
    text: str
    num_tokens: int
    finish_reason: str | None
    cumulative_logprob: float | None
    prompt_tokens: int | None = None
    cost: Cost | None = None
    diagnostics: Mapping[str, Any] | None = None

    def spent(self) -> Cost:
        """This sample's cost: the sampler's count, else one engine call of ``num_tokens``."""
        if self.cost is not None:
            return self.cost
        return Cost(self.num_tokens, self.prompt_tokens or 0, 1)


ProgressFn = Callable[[int], None]
"""Called with the number of samples just finished."""


@runtime_checkable
class Engine(Protocol):
    """A loaded model that samples completions."""

    name: str

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The model's own chat template applied to ``messages``, with the generation prompt."""
        ...

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        config: SamplingConfig,
        progress: ProgressFn | None = None,
    ) -> Iterator[Completion]:
        """Sample every request; completions may come back in any order."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Proposal:
    """The distribution q a sampler draws continuations from: the model's next-token
    distribution at ``temperature``, truncated to the nucleus ``top_p`` (vLLM's rule) and to the
    ``top_k`` most likely tokens (0: no truncation)."""

    temperature: float
    top_p: float = 1.0
    top_k: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature)
                and self.temperature > 0):
            raise ConfigError(f"a proposal temperature must be > 0, got {self.temperature!r}")
        if not (0 < self.top_p <= 1):
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0, got {self.top_k}")


@dataclass(frozen=True)
class Extension:
    """Continue ``context`` (token ids: the prompt's, then the completion so far) by at most
    ``max_new_tokens`` tokens drawn from the proposal with ``seed``, stopping after a stop token."""

    key: Any
    context: tuple[int, ...]
    max_new_tokens: int
    seed: int


@dataclass(frozen=True)
class Continuation:
    """What an engine drew for one Extension: the new tokens with, for each, ``logp`` (the
    log-probability under the model's raw distribution, temperature 1) and ``logq`` (under the
    proposal, after temperature and truncation); ``stopped`` when the last token is a stop
    token; ``cost`` what the engine spent on it (the scoring pass included, where it needs one)."""

    key: Any
    tokens: tuple[int, ...]
    logp: tuple[float, ...]
    logq: tuple[float, ...]
    stopped: bool
    cost: Cost


@runtime_checkable
class TokenEngine(Protocol):
    """What the samplers beyond plain sampling need of an engine: token ids in and out, and the
    exact log p and log q of every token it draws. An engine offers one through
    ``token_engine()``, or refuses there with an EngineError naming what it lacks."""

    name: str
    stop_ids: frozenset[int]
    max_context: int | None
    """Longest context plus continuation the engine holds (tokens), if it has a limit."""

    def encode(self, prompt: str) -> list[int]:
        """The prompt's token ids, as the engine would tokenize it for plain sampling."""
        ...

    def decode(self, tokens: Sequence[int]) -> str:
        """The text of completion tokens, special tokens left out (as plain samples show it)."""
        ...

    def extend(self, requests: Sequence[Extension], proposal: Proposal) -> list[Continuation]:
        """One continuation per request, in order; each depends only on its context and seed."""
        ...


@dataclass(frozen=True)
class ScoreRequest:
    """Score ``completion`` as the continuation of ``prompt``: the log-probability a model gives
    its tokens."""

    key: Any
    prompt: str
    completion: str


@dataclass(frozen=True)
class ScoreResult:
    key: Any
    sum_logprob: float
    num_tokens: int


@runtime_checkable
class Scorer(Protocol):
    """An engine that can also score text (vLLM through ``prompt_logprobs``, transformers)."""

    def score(self, requests: Sequence[ScoreRequest], progress: ProgressFn | None = None) -> Iterator[ScoreResult]: ...


@dataclass(frozen=True)
class GradeItem:
    """A completion to grade against a reference answer, or (code) against the tests in the
    problem's original ``record``."""

    key: Any
    reference: str
    completion: str
    record: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Verdict:
    """The outcome of grading one completion."""

    key: Any
    correct: bool
    extracted: str | None
    error: str | None
    duration_s: float
    details: Any = None
    """JSON-serializable detail, e.g. per-test outcomes of a code sample."""


@runtime_checkable
class Grader(Protocol):
    """Judges completions. ``name`` and ``version`` are stored with every verdict."""

    name: str
    version: str

    def grade(self, items: Iterable[GradeItem], progress: ProgressFn | None = None) -> Iterator[Verdict]:
        """Grade every item, yielding one verdict per item (in any order)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class CodeJob:
    """One program to run against one problem's tests in a sandbox.

    ``plan`` is what the sandbox needs to test the program (its tests, expected values and
    limits); it is sent to a sandbox once and named by ``plan_key`` afterwards. With ``record``
    the sandbox runs the program on the plan's inputs and returns its outputs instead of
    verdicts (how a reference solution's expected values are made)."""

    program: str
    plan_key: str
    plan: Mapping[str, Any] = field(compare=False, repr=False)
    timeout_s: float
    record: bool = False
    all_tests: bool = False


@runtime_checkable
class SandboxReport(Protocol):
    """What a sandbox reports for one job (boundary.workers.sandbox.report.Report): ``status``
    (passed, failed, timeout, crashed, syntax-error, load-error, error, recorded), the grading
    ``error`` if any, a recording job's ``outputs``, and the whole report as JSON (per-test
    ``tests`` outcomes, ``first_failure``, ...)."""

    status: str
    error: str | None
    outputs: dict[str, list] | None

    def to_json(self) -> dict[str, Any]: ...


class Sandbox(Protocol):
    """An isolated, long-lived fork server that runs code jobs (boundary.workers.sandbox)."""

    backend: str

    def run(self, job: CodeJob) -> SandboxReport: ...

    def close(self) -> None: ...
