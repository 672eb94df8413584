"""The hf engine's token-level interface (boundary.api.types.TokenEngine), what the samplers beyond
plain sampling drive: continue contexts of token ids by tokens drawn from a proposal, with each
token's log-probability under the raw model (log p) and under the proposal (log q).

It decodes with the plain path's machinery (batch.Batch: left-padded prompts, ``MIN_ROWS``
filler rows, the KV cache), so a continuation obeys the same batch-invariance rules as a plain
sample (docs/engines.md): it depends only on its context and its seed, whose own
``torch.Generator`` draws one uniform number per token."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from boundary.api.errors import EngineError
from boundary.api.types import Continuation, Cost, Extension, Proposal
from boundary.workers.engines.hf.batch import Batch, Limits, Prompt, Row, slotted
from boundary.workers.engines.hf.token_sampling import sample_proposal

if TYPE_CHECKING:
    from boundary.workers.engines.hf.engine import TransformersEngine


@dataclass
class TokenRow(Row):
    """One continuation being decoded: at most ``limit`` new tokens, with each token's log p
    and log q."""

    limit: int = 0
    logps: list[float] = field(default_factory=list)
    logqs: list[float] = field(default_factory=list)


class TokenBatch(Batch):
    """A Batch whose rows draw from a proposal and stop at their own ``limit``."""

    def __init__(self, engine: TransformersEngine, prompts: list[Prompt], rows: list[TokenRow],
                 proposal: Proposal, limits: Limits):
        super().__init__(engine, prompts, list(rows), None, limits)
        self.proposal = proposal

    def _draw(self, logits: Any) -> tuple[Any, list[Row]]:
        import torch

        uniforms = torch.cat([torch.rand(1, generator=row.generator, dtype=torch.float64) for row in self.rows])
        tokens, logq = sample_proposal(logits, self.proposal, uniforms.to(logits.device))
        logp = logits.log_softmax(dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1).tolist()
        finished = self._record(tokens.tolist(), logp)
        for row, p, q in zip(self.rows, logp, logq.tolist(), strict=True):
            row.logps.append(p)
            row.logqs.append(q)
        return tokens, finished

    def _finish_reason(self, row: Row) -> str | None:
        """The row's own limit (a TokenRow's) or the context's, then the stop tokens (the plain
        path's order)."""
        total = len(self.prompts[row.prompt_slot].ids) + len(row.tokens)
        max_len = self.limits.max_model_len
        if len(row.tokens) >= row.limit or (max_len is not None and total >= max_len):
            return "length"
        if row.tokens[-1] in self.limits.stop_ids:
            return "stop"
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class HfTokens:
    """The token engine of a loaded TransformersEngine (``engine.token_engine()``)."""

    name = "hf"

    def __init__(self, engine: TransformersEngine):
        self.engine = engine
        self.stop_ids: frozenset[int] = engine.stop_ids
        self.max_context: int | None = engine.max_model_len

    def encode(self, prompt: str) -> list[int]:
        """The ids the plain path samples after: the tokenizer's, special tokens included."""
        return list(self.engine.tokenizer(prompt, add_special_tokens=True)["input_ids"])

    def decode(self, tokens: Sequence[int]) -> str:
        """The text a plain sample of these tokens shows: special tokens (the stop token) left out."""
        return self.engine.tokenizer.decode(list(tokens), skip_special_tokens=True)

    def extend(self, requests: Sequence[Extension], proposal: Proposal) -> list[Continuation]:
        """One continuation per request, in order, decoded in batches of at most the engine's
        ``batch_size`` rows whose contexts share a padded length (a context sent twice is
        prefilled once per batch). Cost: the tokens returned, the context's tokens (nothing is
        cached across calls) and one engine call; a request for no tokens costs nothing."""
        if self.engine.model is None:
            raise EngineError("the hf engine is closed")
        pairs = self._rows(requests)
        try:
            for batch in self._batches(pairs, proposal):
                batch.prefill()
                while not batch.done:
                    batch.step()
        except RuntimeError as exc:  # out of memory, a device error
            raise EngineError(f"transformers generation failed: {_first_line(exc)}") from exc
        drawn = {row.index: row for _, row in pairs}
        return [self._continuation(r, drawn.get(i)) for i, r in enumerate(requests)]

    def _rows(self, requests: Sequence[Extension]) -> list[tuple[tuple[int, ...], TokenRow]]:
        """A row for each request that asks for tokens (``index``: its place in ``requests``),
        with its context, and its own generator seeded with its seed."""
        import torch

        pairs = []
        for i, r in enumerate(requests):
            if not r.context:
                raise EngineError(f"extension {r.key!r} has an empty context")
            if self.max_context is not None and len(r.context) >= self.max_context:
                raise EngineError(f"a context of {len(r.context)} tokens does not fit max_model_len {self.max_context}")
            if r.max_new_tokens > 0:
                row = TokenRow(r.key, i, 0, torch.Generator().manual_seed(r.seed), limit=r.max_new_tokens)
                pairs.append((tuple(r.context), row))
        return pairs

    def _batches(self, pairs: list[tuple[tuple[int, ...], TokenRow]], proposal: Proposal) -> Iterator[TokenBatch]:
        """The rows grouped by their context's padded length, ``batch_size`` at a time."""
        prompts = {context: Prompt(list(context)) for context, _ in pairs}
        by_width: dict[int, list[tuple[tuple[int, ...], TokenRow]]] = {}
        for context, row in pairs:
            by_width.setdefault(prompts[context].padded_length, []).append((context, row))
        size = self.engine.options.batch_size
        for width in sorted(by_width):
            group = by_width[width]
            for start in range(0, len(group), size):
                part = group[start : start + size]
                batch_prompts, _ = slotted(part, prompts)
                rows = [row for _, row in part]
                limits = Limits(max(row.limit for row in rows), self.max_context, self.stop_ids)
                yield TokenBatch(self.engine, batch_prompts, rows, proposal, limits)

    def _continuation(self, request: Extension, row: TokenRow | None) -> Continuation:
        if row is None:  # no tokens asked for: nothing was sent to the model
            return Continuation(request.key, (), (), (), False, Cost())
        stopped = bool(row.tokens) and row.tokens[-1] in self.stop_ids
        return Continuation(request.key, tuple(row.tokens), tuple(row.logps), tuple(row.logqs), stopped,
                            Cost(len(row.tokens), len(request.context), 1))
