"""A KV cache that writes into a buffer with room to grow, instead of transformers'
``DynamicCache``, which copies the whole cache at every token (docs/engines.md)."""

from __future__ import annotations

from typing import Any

CACHE_ROOM = 512
"""Tokens per row the KV cache holds beyond the prompt before it first grows (then it doubles):
room for most completions without reserving ``max_tokens`` (16k in the paper) for every row."""


def new_cache(capacity: int, config: Any) -> Any:
    """A KV cache whose layers hold ``capacity`` tokens per row before they must grow; models
    with layers other than softmax attention (linear attention, state spaces) get transformers'
    own cache."""
    from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

    layer_types = getattr(config.get_text_config(decoder=True), "layer_types", None) or ["full_attention"]
    if not set(layer_types) <= {"full_attention", "sliding_attention"}:
        return DynamicCache(config=config)

    class BufferedLayer(DynamicLayer):
        """A ``DynamicLayer`` that writes into a preallocated buffer (doubling when full) and
        hands out views of its filled part, instead of concatenating at every token."""

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self.length, self.buffers = 0, None
            end = self.length + key_states.shape[-2]
            if self.buffers is None or end > self.buffers[0].shape[-2]:
                self._grow(key_states, value_states, max(end, capacity, 2 * self.length))
            for buffer, states in zip(self.buffers, (key_states, value_states)):
                buffer[:, :, self.length : end] = states
            self.length = end
            self._views()
            return self.keys, self.values

        def _grow(self, key_states: Any, value_states: Any, size: int) -> None:
            new = [s.new_empty((*s.shape[:2], size, s.shape[3])) for s in (key_states, value_states)]
            if self.buffers is not None:
                for target, old in zip(new, self.buffers):
                    target[:, :, : self.length] = old[:, :, : self.length]
            self.buffers = new

        def _views(self) -> None:
            self.keys, self.values = (b[:, :, : self.length] for b in self.buffers)

        def get_seq_length(self) -> int:
            return self.length if self.is_initialized else 0

        def batch_select_indices(self, indices: Any) -> None:
            if self.is_initialized and self.buffers is not None:
                self.buffers = [b[indices] for b in self.buffers]
                self._views()

    return Cache(layer_class_to_replicate=BufferedLayer)
