"""The openai engine (``--engine openai``): any OpenAI-compatible ``/v1/completions`` server
(``vllm serve``, SGLang, TGI...): options, the server's messages, retries, a batch of concurrent
requests, and the engine itself (``engine.OpenAIEngine``). Design: docs/engines.md."""
