"""Scoring with the hf engine: the log-probability of each completion's tokens after its
prompt under the loaded model, as the vllm engine computes it with ``prompt_logprobs``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boundary.api.errors import EngineError
from boundary.api.types import ProgressFn, ScoreRequest, ScoreResult

if TYPE_CHECKING:
    from boundary.workers.engines.hf.engine import TransformersEngine

SCORE_POSITIONS = 2048
"""Most positions whose logits one forward pass keeps (rows times the batch's longest
completion): a [positions, vocabulary] float32 tensor, 400 MB for a 49k vocabulary. A longer
completion is scored alone."""


@dataclass(frozen=True)
class Span:
    """One request's token ids: the prompt, then the completion tokens to score."""

    key: Any
    prompt_ids: list[int]
    completion_ids: list[int]


def spans_of(engine: TransformersEngine, requests: Sequence[ScoreRequest]) -> list[Span]:
    """vLLM's tokenization: the prompt with the tokenizer's special tokens, the completion
    without, cut to what fits in the context (one position short of ``max_model_len``, as
    vLLM keeps one for the token it generates, so both engines score the same tokens)."""
    spans = []
    for r in requests:
        prompt_ids = engine.tokenizer(r.prompt)["input_ids"]
        if not prompt_ids:
            raise EngineError(f"score request {r.key!r} has an empty prompt")
        completion_ids = engine.tokenizer(r.completion, add_special_tokens=False)["input_ids"]
        if engine.max_model_len is not None:
            completion_ids = completion_ids[: max(0, engine.max_model_len - 1 - len(prompt_ids))]
        spans.append(Span(r.key, list(prompt_ids), list(completion_ids)))
    return spans


def groups(spans: Sequence[Span], batch_size: int) -> Iterator[list[Span]]:
    """Consecutive spans, at most ``batch_size`` of them and ``SCORE_POSITIONS`` kept logits."""
    group: list[Span] = []
    for span in spans:
        widest = max([len(s.completion_ids) for s in group] + [len(span.completion_ids)])
        if group and (len(group) >= batch_size or (len(group) + 1) * (widest + 1) > SCORE_POSITIONS):
            yield group
            group = []
        group.append(span)
    if group:
        yield group


def score(engine: TransformersEngine, requests: Sequence[ScoreRequest],
          progress: ProgressFn | None) -> Iterator[ScoreResult]:
    """A ScoreResult per request, in order; a completion with no token to score sums to 0."""
    for group in groups(spans_of(engine, requests), engine.options.batch_size):
        totals = iter(_forward(engine, [s for s in group if s.completion_ids]))
        for span in group:
            yield ScoreResult(span.key, next(totals) if span.completion_ids else 0.0, len(span.completion_ids))
            if progress is not None:
                progress(1)


def _forward(engine: TransformersEngine, spans: list[Span]) -> list[float]:
    """One left-padded forward pass over ``spans``; each one's summed completion log-probability."""
    import torch

    if not spans:
        return []
    rows = [s.prompt_ids + s.completion_ids for s in spans]
    width, pad, device = max(map(len, rows)), engine.pad_id, engine.device
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    keep = max(len(s.completion_ids) for s in spans) + 1
    with torch.inference_mode():
        out = engine.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                           use_cache=False, logits_to_keep=keep)
        logprobs = out.logits.float().log_softmax(dim=-1)  # position j predicts token j + 1
        totals = []
        for row, span in enumerate(spans):
            count = len(span.completion_ids)
            targets = torch.tensor(span.completion_ids, device=logprobs.device).unsqueeze(-1)
            picked = logprobs[row, keep - 1 - count : keep - 1].gather(-1, targets)
            totals.append(float(picked.sum()))
    return totals
