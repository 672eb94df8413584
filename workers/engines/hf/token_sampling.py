"""Drawing a token from logits, row by row: greedy, temperature, vLLM's top-p rule, and an
inverse CDF at each row's own uniform number (why: docs/engines.md)."""

from __future__ import annotations

from typing import Any

from boundary.api.types import SamplingConfig

NUCLEUS_CANDIDATES = 256
"""Most likely tokens considered first for top-p (a partial sort, 25x cheaper than sorting a
49k vocabulary); a row whose nucleus is wider is sorted in full."""


def sample_tokens(logits: Any, config: SamplingConfig, uniforms: Any) -> Any:
    """Token ids for a [rows, vocab] float32 logits tensor: greedy at temperature 0, else
    temperature, top-p, then inverse CDF at each row's uniform number in [0, 1). Every step
    is row by row, so a row's token never depends on the other rows."""
    if config.temperature == 0:
        return logits.argmax(dim=-1)
    scaled = logits / config.temperature
    log_total = scaled.logsumexp(dim=-1, keepdim=True)
    if config.top_p >= 1:
        return _inverse_cdf((scaled - log_total).exp(), uniforms)
    values, order = scaled.topk(min(NUCLEUS_CANDIDATES, scaled.shape[-1]), dim=-1)
    tokens = _nucleus(values, order, log_total, config.top_p, uniforms)
    wide = ((values - log_total).exp().sum(dim=-1) < config.top_p).nonzero().squeeze(-1)
    if wide.numel():  # nucleus wider than the candidates: sort those rows' whole vocabulary
        values, order = scaled[wide].sort(dim=-1, descending=True)
        tokens[wide] = _nucleus(values, order, log_total[wide], config.top_p, uniforms[wide])
    return tokens


def _nucleus(values: Any, order: Any, log_total: Any, top_p: float, uniforms: Any) -> Any:
    """Sample among the most likely tokens (``values`` sorted in descending order, ``order``
    their ids) whose mass reaches ``top_p``: vLLM's rule, always keeping the most likely."""
    probs = (values - log_total).exp()
    probs = probs.masked_fill(probs.cumsum(dim=-1) - probs >= top_p, 0.0)
    return order.gather(-1, _inverse_cdf(probs, uniforms).unsqueeze(-1)).squeeze(-1)


def _inverse_cdf(probs: Any, uniforms: Any) -> Any:
    """For each row, the first index whose cumulative probability exceeds ``u`` times the row's
    total, never a zero-probability index (when ``u * total`` rounds up to the total)."""
    import torch

    cdf = probs.cumsum(dim=-1)
    targets = (uniforms.to(cdf.dtype) * cdf[:, -1]).unsqueeze(-1)
    choice = torch.searchsorted(cdf, targets, right=True)
    last_positive = probs.shape[-1] - 1 - (probs > 0).flip(-1).int().argmax(dim=-1, keepdim=True)
    return torch.minimum(choice, last_positive).squeeze(-1)
