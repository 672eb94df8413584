"""Drawing a token from logits, row by row: greedy, temperature, vLLM's top-k and top-p rules,
and an inverse CDF at each row's own uniform number (why: docs/engines.md). ``sample_tokens``
draws plain samples; ``sample_proposal`` draws from a sampler's proposal and gives each token's
log-probability under it."""

from __future__ import annotations

from typing import Any

from boundary.api.types import Proposal, SamplingConfig

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


def sample_proposal(logits: Any, proposal: Proposal, uniforms: Any) -> tuple[Any, Any]:
    """Tokens drawn from ``proposal`` for a [rows, vocab] float32 logits tensor, and each token's
    log q: the log-probability under the logits at the proposal's temperature, truncated as vLLM
    truncates them (top-k first, keeping every token tied with the k-th; then the nucleus top-p
    of what top-k kept, renormalized), renormalized over the kept tokens. Inverse CDF at each
    row's uniform number in [0, 1), row by row; at top_k 0 the token is the one
    ``sample_tokens`` draws at the same temperature, top-p and uniform number."""
    scaled = logits / proposal.temperature
    if not proposal.top_k and proposal.top_p >= 1:
        logq = scaled - scaled.logsumexp(dim=-1, keepdim=True)
        tokens = _inverse_cdf(logq.exp(), uniforms)
        return tokens, logq.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    if proposal.top_k:
        values, order = _top_k(scaled, proposal.top_k)
        return _truncated(values, order, values.logsumexp(dim=-1, keepdim=True), proposal.top_p, uniforms)
    log_total = scaled.logsumexp(dim=-1, keepdim=True)
    values, order = scaled.topk(min(NUCLEUS_CANDIDATES, scaled.shape[-1]), dim=-1)
    tokens, logq = _truncated(values, order, log_total, proposal.top_p, uniforms)
    wide = ((values - log_total).exp().sum(dim=-1) < proposal.top_p).nonzero().squeeze(-1)
    if wide.numel():  # nucleus wider than the candidates: sort those rows' whole vocabulary
        values, order = scaled[wide].sort(dim=-1, descending=True)
        tokens[wide], logq[wide] = _truncated(values, order, log_total[wide], proposal.top_p, uniforms[wide])
    return tokens, logq


def _top_k(scaled: Any, k: int) -> tuple[Any, Any]:
    """The ``k`` largest of each row in descending order, and their ids, with every token tied
    with the k-th (vLLM keeps each token whose logit reaches the k-th largest); where ties make
    one row keep more, the others' extra columns are -inf."""
    k = min(k, scaled.shape[-1])
    top = scaled.topk(k, dim=-1)
    kth = top.values[:, -1:]
    width = int((scaled >= kth).sum(dim=-1).max())
    values, order = top if width == k else scaled.topk(width, dim=-1)
    return values.masked_fill(values < kth, float("-inf")), order


def _truncated(values: Any, order: Any, log_total: Any, top_p: float, uniforms: Any) -> tuple[Any, Any]:
    """Draw among candidates (``values`` sorted in descending order, ``order`` their ids) with
    probabilities ``exp(values - log_total)``, cut to the nucleus ``top_p`` (vLLM's rule): the
    token, and its log-probability renormalized over the candidates kept."""
    probs = (values - log_total).exp()
    if top_p < 1:
        probs = probs.masked_fill(probs.cumsum(dim=-1) - probs >= top_p, 0.0)
    choice = _inverse_cdf(probs, uniforms).unsqueeze(-1)
    kept = values.masked_fill(probs == 0, float("-inf"))
    logq = kept.gather(-1, choice) - kept.logsumexp(dim=-1, keepdim=True)
    return order.gather(-1, choice).squeeze(-1), logq.squeeze(-1)


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
