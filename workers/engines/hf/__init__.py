"""The transformers + torch engine (``--engine hf``), for machines without vLLM: options,
token sampling, attention and KV cache, batching, scoring, and the engine itself
(``engine.TransformersEngine``). Design and figures: docs/engines.md."""
