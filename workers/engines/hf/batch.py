"""Batching for the hf engine: the rows (samples) being decoded, the plan that groups them by
padded prompt length, and a batch that prefills once and decodes its rows until all finish,
with the same arithmetic for a row whatever the batch holds (the rules: docs/engines.md)."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from boundary.api.types import GenerationRequest, SamplingConfig
from boundary.workers.engines.hf.kv_cache import CACHE_ROOM, new_cache
from boundary.workers.engines.hf.token_sampling import sample_tokens

if TYPE_CHECKING:
    from boundary.workers.engines.hf.engine import TransformersEngine

MIN_ROWS = 4
"""Fewest rows any matrix product runs on: CPU kernels take other paths (GEMV, small-M GEMM)
below this, which changes a row's last bits with the number of rows beside it. Filler copies of
a live row make up the difference."""

PAD_MULTIPLE = 32
"""Prompts are left-padded to the next multiple of this many tokens above their length (at
least one pad token): the same layout for a prompt in every batch, and prompts of similar length
share batches."""


@dataclass
class Row:
    """One sample being decoded."""

    key: Any
    index: int
    prompt_slot: int
    generator: Any
    copies: int = 1
    tokens: list[int] = field(default_factory=list)
    logprob: float = 0.0
    finish_reason: str | None = None


@dataclass(frozen=True)
class Prompt:
    ids: list[int]

    @property
    def padded_length(self) -> int:
        return (len(self.ids) // PAD_MULTIPLE + 1) * PAD_MULTIPLE


@dataclass(frozen=True)
class Limits:
    max_tokens: int
    max_model_len: int | None
    stop_ids: frozenset[int]


class Batch:
    """Rows whose prompts share a padded length, decoded together until every row finishes.

    The tensors (KV cache, mask, positions, logits) hold the live rows, then ``filler`` copies
    of the first live row that keep every matrix product at ``MIN_ROWS`` rows or more. ``config``
    is what ``_draw`` samples with (None for a subclass whose ``_draw`` does not use it)."""

    def __init__(
        self,
        engine: TransformersEngine,
        prompts: list[Prompt],
        rows: list[Row],
        config: SamplingConfig | None,
        limits: Limits,
    ):
        self.engine, self.prompts, self.rows, self.config, self.limits = engine, prompts, rows, config, limits
        self.filler = max(0, MIN_ROWS - len(rows))
        self.cache: Any = None
        self.mask: Any = None
        self.positions: Any = None
        self.logits: Any = None

    def prefill(self) -> None:
        import torch

        width, pad, device = self.prompts[0].padded_length, self.engine.pad_id, self.engine.device
        ids = torch.tensor([[pad] * (width - len(p.ids)) + p.ids for p in self.prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p.ids)) + [1] * len(p.ids) for p in self.prompts], device=device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        self.cache = new_cache(width + min(self.limits.max_tokens, CACHE_ROOM), self.engine.model.config)
        with torch.inference_mode():
            out = self.engine.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=self.cache,
                use_cache=True,
                logits_to_keep=MIN_ROWS,  # the LM head product has MIN_ROWS rows even for one prompt
            )
            slots = [row.prompt_slot for row in self.rows]
            index = torch.tensor(slots + slots[:1] * self.filler, device=device)
            self.cache.batch_select_indices(index)
            self.mask, self.positions = mask[index], positions[index, -1:]
            self.logits = out.logits[:, -1].float()[index]

    def step(self) -> list[Row]:
        """Sample one token for every live row, advance the model, and return the rows that
        just finished."""
        import torch

        with torch.inference_mode():
            tokens, finished = self._draw(self.logits[: len(self.rows)])
            live = [i for i, row in enumerate(self.rows) if row.finish_reason is None]
            if live:
                self._forward(tokens, live)
        return finished

    def _draw(self, logits: Any) -> tuple[Any, list[Row]]:
        """Draw a token for every live row from its ``logits`` and record it: the tokens, and the
        rows that just finished. A batch that draws otherwise (the token-level interface's
        proposal) overrides this."""
        tokens = sample_tokens(logits, self.config, self._uniforms().to(logits.device))
        logprobs = logits.log_softmax(dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        return tokens, self._record(tokens.tolist(), logprobs.tolist())

    def _uniforms(self) -> Any:
        """One uniform number per live row from the row's own generator (unused when greedy)."""
        import torch

        if self.config.temperature == 0:
            return torch.zeros(len(self.rows), dtype=torch.float64)
        return torch.cat([torch.rand(1, generator=row.generator, dtype=torch.float64) for row in self.rows])

    def _record(self, tokens: list[int], logprobs: list[float]) -> list[Row]:
        finished: list[Row] = []
        for row, token, logprob in zip(self.rows, tokens, logprobs, strict=True):
            row.tokens.append(token)
            row.logprob += logprob
            row.finish_reason = self._finish_reason(row)
            if row.finish_reason is not None:
                finished.append(row)
        return finished

    def _finish_reason(self, row: Row) -> str | None:
        """vLLM's order: the length limits first, then the stop tokens."""
        limits = self.limits
        total = len(self.prompts[row.prompt_slot].ids) + len(row.tokens)
        if len(row.tokens) >= limits.max_tokens or (limits.max_model_len is not None and total >= limits.max_model_len):
            return "length"
        if row.tokens[-1] in limits.stop_ids:
            return "stop"
        return None

    def _forward(self, tokens: Any, live: list[int]) -> None:
        import torch

        tokens = torch.cat([tokens, tokens[:1].expand(self.filler)])
        if len(live) < len(self.rows):  # drop finished rows from every tensor
            self.filler = max(0, MIN_ROWS - len(live))
            index = torch.tensor(live + live[:1] * self.filler, device=tokens.device)
            self.cache.batch_select_indices(index)
            self.mask, self.positions, tokens = self.mask[index], self.positions[index], tokens[index]
            self.rows = [self.rows[i] for i in live]
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.mask), 1)], dim=-1)
        self.positions = self.positions + 1
        out = self.engine.model(
            input_ids=tokens.unsqueeze(-1),
            attention_mask=self.mask,
            position_ids=self.positions,
            past_key_values=self.cache,
            use_cache=True,
        )
        self.logits = out.logits[:, -1].float()

    @property
    def done(self) -> bool:
        return all(row.finish_reason is not None for row in self.rows)


def rows_of(request: GenerationRequest, config: SamplingConfig) -> list[Row]:
    """The rows that draw ``request``'s samples: one per sample, or at temperature 0 one row
    standing for all of them (greedy decoding ignores the seed)."""
    import torch

    if config.temperature == 0:
        return [Row(request.key, request.first_index, 0, None, copies=request.count)] if request.count else []
    return [
        Row(request.key, i, 0, torch.Generator().manual_seed(request.seed + i))
        for i in range(request.first_index, request.first_index + request.count)
    ]


def plan(
    requests: Sequence[GenerationRequest],
    prompts: Mapping[str, Prompt],
    config: SamplingConfig,
    batch_size: int,
) -> Iterator[tuple[list[Prompt], list[Row]]]:
    """Batches of at most ``batch_size`` rows whose prompts share a padded length: each batch's
    distinct prompts, and its rows pointing into them by ``prompt_slot``."""
    by_width: dict[int, list[tuple[str, Row]]] = {}
    for request in requests:
        width = prompts[request.prompt].padded_length
        by_width.setdefault(width, []).extend((request.prompt, row) for row in rows_of(request, config))
    for width in sorted(by_width):
        pairs = by_width[width]
        for start in range(0, len(pairs), batch_size):
            yield slotted(pairs[start : start + batch_size], prompts)


def slotted(pairs: Sequence[tuple[Hashable, Row]],
            prompts: Mapping[Any, Prompt]) -> tuple[list[Prompt], list[Row]]:
    """One batch's distinct prompts (each prompt named by a key: its text, or its token ids), and
    its rows with ``prompt_slot`` pointing into them."""
    slots: dict[Hashable, int] = {}
    for name, row in pairs:
        row.prompt_slot = slots.setdefault(name, len(slots))
    return [prompts[name] for name in slots], [row for _, row in pairs]
