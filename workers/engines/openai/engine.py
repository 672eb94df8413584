"""The openai engine: one HTTP request per sample against an OpenAI-compatible server, so a
sample depends only on its prompt, the config and its own seed (docs/engines.md)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from boundary.api.errors import EngineError
from boundary.api.models import ModelSpec
from boundary.api.types import Completion, GenerationRequest, ProgressFn, SamplingConfig, TokenEngine
from boundary.workers.engines.openai.batch import Batch, samples_of, sampling
from boundary.workers.engines.openai.messages import describe
from boundary.workers.engines.openai.options import OpenAIOptions
from boundary.workers.engines.openai.server import check_server
from boundary.workers.engines.openai.tokens import OpenAITokens


class OpenAIEngine:
    name = "openai"

    def __init__(self, options: OpenAIOptions):
        self.options = options
        self._tokenizer: Any = None
        self._tokens: OpenAITokens | None = None
        self._batches: set[Batch[Any, Any]] = set()
        self._closed = False

    @classmethod
    def load(cls, spec: ModelSpec, options: Mapping[str, Any], cache_dir: Path) -> OpenAIEngine:
        """Check the options and that the server answers; ``cache_dir`` is unused (the weights
        live with the server)."""
        parsed = OpenAIOptions.parse(spec, options)
        check_server(parsed)
        return cls(parsed)

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        tokenizer = self.tokenizer()
        if not getattr(tokenizer, "chat_template", None):
            raise EngineError(
                f"tokenizer {self.options.tokenizer} has no chat template; use --template boxed or qwen-boxed"
            )
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def tokenizer(self) -> Any:
        """The tokenizer named by the ``tokenizer`` option, loaded on first use."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.options.tokenizer)
        return self._tokenizer

    def token_engine(self) -> TokenEngine:
        """The server's token-level interface (workers/engines/openai/tokens.py), checked once per
        engine: the samplers ask for it at every batch, and what it checks (the server's
        endpoints, its logprobs mode) is fixed when the server starts. It is checked here rather
        than at the first extend so that a server that cannot serve a sampler is refused before
        any prompt is encoded or any chain drawn."""
        if self._closed:
            raise EngineError("the openai engine is closed")
        if self._tokens is None:
            self._tokens = OpenAITokens.connect(self.options)
        return self._tokens

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        config: SamplingConfig,
        progress: ProgressFn | None = None,
    ) -> Iterator[Completion]:
        if self._closed:
            raise EngineError("the openai engine is closed")
        samples = samples_of(requests)
        if not samples:
            return
        batch = Batch(self.options, samples, sampling(config))
        self._batches.add(batch)
        try:
            for completion in batch:
                if progress is not None:
                    progress(1)
                yield completion
        finally:
            batch.close()
            self._batches.discard(batch)

    def close(self) -> None:
        self._closed = True
        for batch in list(self._batches):
            batch.close()
        self._batches.clear()
        self._tokenizer = None
        self._tokens = None


def load_tokenizer(source: str | None) -> Any:
    if source is None:
        raise EngineError(
            "the openai engine needs the tokenizer option (a local folder or hub id) to apply the "
            "model's chat template; or use --template boxed or qwen-boxed"
        )
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise EngineError("the tokenizer option needs transformers: pip install transformers") from None
    try:
        return AutoTokenizer.from_pretrained(source)
    except Exception as exc:
        raise EngineError(f"cannot load tokenizer {source}: {describe(exc)}") from None
