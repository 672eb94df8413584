"""Eager attention that folds the query heads sharing a KV head into one matrix product,
registered in transformers under ``ATTENTION`` (why: docs/engines.md)."""

from __future__ import annotations

from typing import Any

ATTENTION = "boundary_gqa"
"""The name ``gqa_attention`` is registered under in transformers' attention interfaces."""


def gqa_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    scaling: float,
    dropout: float = 0.0,
    softcap: float | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers' eager attention (inference only), with the ``groups`` query heads that
    share a KV head folded into the query length: one product per KV head, no copy of the cache."""
    import torch

    if kwargs.get("s_aux") is not None:
        raise NotImplementedError("the hf engine's attention does not support attention sinks (gpt-oss)")
    batch, heads, q_len, dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    folded = query.reshape(batch, kv_heads, groups * q_len, dim)
    scores = (torch.matmul(folded, key.transpose(2, 3)) * scaling).view(batch, kv_heads, groups, q_len, kv_len)
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, None, :, -kv_len:]
    weights = scores.softmax(dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(weights.view(batch, kv_heads, groups * q_len, kv_len), value)
    return out.view(batch, heads, q_len, dim).transpose(1, 2).contiguous(), None


def register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(ATTENTION, gqa_attention)
    AttentionMaskInterface.register(ATTENTION, eager_mask)
