"""A test and benchmark engine: instant, deterministic text, no model.

It exists to test and measure what surrounds sampling (queues, workers, the database,
failure handling) without a model's cost or noise; its runs are stored under engine "echo"
and are never mistaken for a model's. Sample ``i`` of a request is a function of the prompt and
``seed + i`` only, like a real engine's, so top-ups and redeliveries behave as they would.

Options:
  delay_s      seconds to sleep per sample (to interrupt a run in the middle)
  fail_on      a text: a prompt containing it makes generate() raise (a failing batch)
  crash_on     a text: a prompt containing it kills this process with SIGKILL (a batch that
               kills its worker, like an OOM kill or a segfault)
  reply        a fixed completion for every sample (a known answer, to test grading end to end)
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from boundary.api.errors import ConfigError, EngineError
from boundary.api.models import ModelSpec
from boundary.api.types import Completion, GenerationRequest, ProgressFn, SamplingConfig, ScoreRequest, ScoreResult
from boundary.workers.engines.markov import MarkovTokens

OPTIONS = ("delay_s", "fail_on", "crash_on", "reply")

ECHO_CHAIN_SEED = 15
"""Seed of the echo engine's token-level Markov chain (any fixed value: it only has to stay the same)."""

ECHO_STOP_SHIFT = 1.0
"""Lowers the stop token's logits in the echo chain so that its completions run to about ten
tokens (unshifted, most stop after one or two), giving the samplers blocks to work on."""


def echo_text(prompt: str, seed: int) -> str:
    """The completion of ``prompt`` for ``seed``: a short line ending in a boxed number."""
    digest = hashlib.blake2b(f"{seed}:{prompt}".encode(), digest_size=4).digest()
    value = int.from_bytes(digest, "big")
    return f"Working it out ({value % 997}). The answer is \\boxed{{{value % 40}}}."


class EchoEngine:
    name = "echo"

    def __init__(self, delay_s: float = 0.0, fail_on: str | None = None, crash_on: str | None = None,
                 reply: str | None = None):
        self.delay_s, self.fail_on, self.crash_on = float(delay_s), fail_on, crash_on
        self.reply = None if reply is None else str(reply)

    @classmethod
    def load(cls, spec: ModelSpec, options: Mapping[str, Any], cache_dir: Path) -> EchoEngine:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ConfigError(f"unknown echo engine option(s): {', '.join(unknown)} (known: {', '.join(OPTIONS)})")
        return cls(**options)

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"

    def generate(
        self, requests: Sequence[GenerationRequest], config: SamplingConfig, progress: ProgressFn | None = None
    ) -> Iterator[Completion]:
        for request in requests:
            if self.crash_on and self.crash_on in request.prompt:
                os.kill(os.getpid(), signal.SIGKILL)
            if self.fail_on and self.fail_on in request.prompt:
                raise EngineError(f"echo engine told to fail on prompts containing {self.fail_on!r}")
            for i in range(request.first_index, request.first_index + request.count):
                if self.delay_s:
                    time.sleep(self.delay_s)
                text = self.reply if self.reply is not None else echo_text(request.prompt, request.seed + i)
                yield Completion(request.key, i, text, len(text.split()), "stop", -float(len(text)) / 10,
                                 prompt_tokens=len(request.prompt.split()))
                if progress is not None:
                    progress(1)

    def score(self, requests: Sequence[ScoreRequest], progress: ProgressFn | None = None) -> Iterator[ScoreResult]:
        """A deterministic stand-in: -0.5 per whitespace token of the completion, less for text
        the echo engine itself would produce ("The answer is" scores -0.1 per token)."""
        for r in requests:
            tokens = r.completion.split()
            per_token = -0.1 if "The answer is" in r.completion else -0.5
            yield ScoreResult(r.key, per_token * len(tokens), len(tokens))
            if progress is not None:
                progress(1)

    def token_engine(self) -> MarkovTokens:
        """A small Markov chain over six tokens (five words and a stop token) with exact log p
        and log q: what the samplers beyond plain need, without a model. ``delay_s`` is slept
        once per engine call, ``fail_on`` and ``crash_on`` act on the prompt, as for plain."""
        tokens = MarkovTokens.random(6, seed=ECHO_CHAIN_SEED)
        tokens.logits[:, tokens.stop] -= ECHO_STOP_SHIFT
        tokens.words = ["one", "two", "three", "four", "five", ""]
        engine = self

        class EchoTokens(MarkovTokens):
            name = "echo"

            def encode(self, prompt: str) -> list[int]:
                if engine.crash_on and engine.crash_on in prompt:
                    os.kill(os.getpid(), signal.SIGKILL)
                if engine.fail_on and engine.fail_on in prompt:
                    raise EngineError(f"echo engine told to fail on prompts containing {engine.fail_on!r}")
                return super().encode(prompt)

            def extend(self, requests, proposal):  # noqa: ANN001, ANN202 - MarkovTokens.extend's signature
                if engine.delay_s:
                    time.sleep(engine.delay_s)
                return super().extend(requests, proposal)

        echo = EchoTokens(tokens.logits, tokens.stop, tokens.words)
        return echo

    def close(self) -> None:
        pass
