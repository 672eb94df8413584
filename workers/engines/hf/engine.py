"""The hf engine (``--engine hf``): plain transformers + torch, for machines without vLLM (a
Mac, any CPU). Samples are reproducible whatever the batch; the design and its measured figures
are in docs/engines.md."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from boundary.api.errors import EngineError
from boundary.api.models import ModelSpec
from boundary.api.types import (
    Completion,
    GenerationRequest,
    ProgressFn,
    SamplingConfig,
    ScoreRequest,
    ScoreResult,
    TokenEngine,
)
from boundary.workers.engines.hf import scoring
from boundary.workers.engines.hf.attention import ATTENTION, register_attention
from boundary.workers.engines.hf.batch import Batch, Limits, Prompt, Row, plan
from boundary.workers.engines.hf.options import HfOptions, parse_options
from boundary.workers.engines.hf.tokens import HfTokens
from boundary.workers.engines.weights import local_weights


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class TransformersEngine:
    name = "hf"

    def __init__(self, model: Any, tokenizer: Any, options: HfOptions):
        self.model = model
        self.tokenizer = tokenizer
        self.options = options
        self.device = options.device
        self.stop_ids = _stop_ids(model, tokenizer)
        self.pad_id = _pad_id(tokenizer, self.stop_ids)
        self.max_model_len = options.max_model_len or getattr(model.config, "max_position_embeddings", None)

    @classmethod
    def load(cls, spec: ModelSpec, options: Mapping[str, Any], cache_dir: Path) -> TransformersEngine:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            missing = f"the hf engine needs torch and transformers ({exc.name} is missing)"
            raise EngineError(f"{missing}: pip install 'boundary[hf]'") from None
        parsed = parse_options(options)
        if parsed.threads is not None:  # process-wide: this engine is the process's only torch user
            torch.set_num_threads(parsed.threads)
        path = local_weights(spec, cache_dir)
        try:
            register_attention()
            tokenizer = AutoTokenizer.from_pretrained(path)
            dtype = getattr(torch, parsed.dtype)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=ATTENTION)
            model.to(parsed.device).eval()
        except Exception as exc:
            raise EngineError(f"transformers could not load {spec.name} ({path}): {_first_line(exc)}") from None
        return cls(model, tokenizer, parsed)

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise EngineError("this model has no chat template; use --template boxed or qwen-boxed")
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        config: SamplingConfig,
        progress: ProgressFn | None = None,
    ) -> Iterator[Completion]:
        if self.model is None:
            raise EngineError("the hf engine is closed")
        limits = Limits(config.max_tokens, self.max_model_len, self.stop_ids)
        prompts = self._tokenize(requests)
        for batch_prompts, rows in plan(requests, prompts, config, self.options.batch_size):
            batch = Batch(self, batch_prompts, rows, config, limits)
            try:
                batch.prefill()
                while not batch.done:
                    for row in batch.step():
                        yield from self._complete(row, len(batch.prompts[row.prompt_slot].ids), progress)
            except RuntimeError as exc:  # out of memory, a device error
                raise EngineError(f"transformers generation failed: {_first_line(exc)}") from exc

    def _tokenize(self, requests: Sequence[GenerationRequest]) -> dict[str, Prompt]:
        prompts: dict[str, Prompt] = {}
        for request in requests:
            if request.prompt not in prompts:
                ids = self.tokenizer(request.prompt, add_special_tokens=True)["input_ids"]
                if not ids:
                    raise EngineError(f"request {request.key!r} has an empty prompt")
                if self.max_model_len is not None and len(ids) >= self.max_model_len:
                    raise EngineError(f"a prompt of {len(ids)} tokens does not fit max_model_len {self.max_model_len}")
                prompts[request.prompt] = Prompt(ids)
        return prompts

    def _complete(self, row: Row, prompt_tokens: int, progress: ProgressFn | None) -> Iterator[Completion]:
        text = self.tokenizer.decode(row.tokens, skip_special_tokens=True)
        for copy in range(row.copies):
            if progress is not None:
                progress(1)
            yield Completion(
                key=row.key,
                index=row.index + copy,
                text=text,
                num_tokens=len(row.tokens),
                finish_reason=row.finish_reason,
                cumulative_logprob=row.logprob,
                prompt_tokens=prompt_tokens,
            )

    def score(self, requests: Sequence[ScoreRequest], progress: ProgressFn | None = None) -> Iterator[ScoreResult]:
        """The log-probability of each completion's tokens after its prompt, as the vllm engine
        gives it. A completion that does not fit in the context is scored on the tokens that do."""
        if self.model is None:
            raise EngineError("the hf engine is closed")
        try:
            yield from scoring.score(self, requests, progress)
        except RuntimeError as exc:  # out of memory, a device error
            raise EngineError(f"transformers scoring failed: {_first_line(exc)}") from exc

    def token_engine(self) -> TokenEngine:
        """This engine's token-level interface (``tokens.HfTokens``), what the samplers beyond
        plain sampling drive: it needs no other load options (the raw and the proposal's
        log-probabilities both come from the logits)."""
        if self.model is None:
            raise EngineError("the hf engine is closed")
        return HfTokens(self)

    def close(self) -> None:
        model, self.model = self.model, None
        if model is None:
            return
        del model
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # pragma: no cover - best effort at teardown
            pass


def _stop_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """The tokenizer's EOS token and the generation config's, as vLLM stops on both."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    return frozenset(ids)


def _pad_id(tokenizer: Any, stop_ids: frozenset[int]) -> int:
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    return min(stop_ids) if stop_ids else 0

