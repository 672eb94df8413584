"""Plain transformers + torch: the sampling engine for machines without vLLM (a Mac, any CPU).

Tokens are drawn here, not by ``model.generate``. Sample ``i`` of a request owns a CPU
``torch.Generator`` seeded with ``seed + i`` that draws one uniform number per token; the token
is found by inverse CDF over the temperature-scaled, nucleus-truncated distribution (vLLM's
top-p rule: the smallest set of most likely tokens whose mass reaches ``top_p``). A sample
therefore depends only on the prompt, the config and ``seed + i``, so drawing samples 0..3 and
then 4..7 gives exactly what drawing 0..7 at once gives. Temperature 0 is greedy: one row per
request is decoded and copied ``count`` times.

The random numbers are only half of it: the logits of a row must not depend on the rows
decoded beside it either, or a top-up drifts away from the single large run (in bfloat16 a
different batch layout moves logits by about 1). Three rules keep a row's arithmetic the same
whatever the batch holds, and were checked bit for bit on x86 CPUs (oneDNN):
- a prompt is always left-padded to the same length, the next multiple of ``PAD_MULTIPLE``
  strictly above its own length, so every row has padding and an explicit attention mask
  (transformers drops the mask, and changes SDPA kernels, when a batch has no padding);
- no matrix product ever runs on fewer than ``MIN_ROWS`` rows: CPU kernels take other paths
  (GEMV, small-M GEMM) for one to three rows. The prefill keeps the logits of the last
  ``MIN_ROWS`` positions, and a batch with fewer live rows decodes copies of one of them;
- the prompt is prefilled once per batch and its KV cache copied to each of its rows.
On another x86 CPU (AVX-512, no AMX) the number of rows still changes a float32 GEMM's
blocking: there the top-up gives the same texts, and cumulative logprobs that differ in the 7th
digit. On GPUs kernels are chosen by shape, so there a top-up is reproducible up to rare flips
caused by last-bit differences, like vLLM's.

Rows of one batch share a prompt length bucket and are decoded until all finish; finished rows
are dropped from the KV cache. Two pieces replace transformers' defaults, for speed on CPUs: a
KV cache that writes into a buffer with room to grow (``DynamicCache`` copies the whole cache
at every token), and eager attention that folds the query heads sharing a KV head into one
matrix product (SDPA with a padding mask, and eager, copy the cache once per query head).
With a partial sort for top-p, they made decoding 3x faster on one x86 core (106 to 305
tokens/s, 4 prompts x 8 samples x 128 tokens).

``finish_reason`` and ``num_tokens`` follow vLLM: the length limits are checked before the stop
tokens, and a stop token is counted in ``num_tokens`` (and in ``cumulative_logprob``, the sum of
the sampled tokens' log-probabilities under the raw logits, as vLLM v1 reports by default)
though not shown in the text.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boundary.api.errors import ConfigError, EngineError
from boundary.api.models import ModelSpec
from boundary.api.types import Completion, GenerationRequest, ProgressFn, SamplingConfig
from boundary.workers.engines.cpu import has_fast_bf16
from boundary.workers.engines.weights import local_weights

BATCH_SIZE = 32
"""Rows (samples) decoded together. bfloat16 SmolLM2-135M on one x86 core: 131 tokens/s at 8
rows, 305 at 32, 320 at 64; the KV cache of 32 rows of 2k tokens of a 7B model is ~4 GiB."""

MIN_ROWS = 4
"""Fewest rows any matrix product runs on: CPU kernels take other paths (GEMV, small-M GEMM)
below this, which changes a row's last bits with the number of rows beside it. Filler copies of
a live row make up the difference."""

PAD_MULTIPLE = 32
"""Prompts are left-padded to the next multiple of this many tokens above their length (at
least one pad token): the same layout for a prompt in every batch, and prompts of similar length
share batches."""

NUCLEUS_CANDIDATES = 256
"""Most likely tokens considered first for top-p (a partial sort, 25x cheaper than sorting a
49k vocabulary); a row whose nucleus is wider is sorted in full."""

CACHE_ROOM = 512
"""Tokens per row the KV cache holds beyond the prompt before it first grows (then it doubles):
room for most completions without reserving ``max_tokens`` (16k in the paper) for every row."""

OPTIONS: tuple[str, ...] = ("dtype", "device", "batch_size", "max_model_len", "threads")
"""Engine options (``--engine-option``) this engine accepts."""

DTYPES: tuple[str, ...] = ("auto", "bfloat16", "float16", "float32")
"""``auto``: bfloat16 on CUDA and on CPUs with AVX512-BF16 (on 2 such cores SmolLM2-135M decodes
about 500 tokens/s against 250 in float32, prefills 4x faster, and gives bit-identical samples
whatever the batch), float16 on Apple MPS (untested), float32 on other CPUs, whose bfloat16
matrix products are emulated."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class HfOptions:
    """Parsed engine options; ``dtype`` and ``device`` are already resolved from ``auto``."""

    dtype: str
    device: str
    batch_size: int
    max_model_len: int | None
    threads: int | None


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise ConfigError(f"engine option {name} must be a positive integer, got {value!r}")
    number = int(value)
    if number < 1:
        raise ConfigError(f"engine option {name} must be a positive integer, got {value!r}")
    return number


def _resolve_device(value: Any) -> str:
    import torch

    if value in (None, "auto"):
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    try:
        return str(torch.device(str(value)))
    except (RuntimeError, ValueError):
        raise ConfigError(f"engine option device: unknown device {value!r} (cpu, cuda, cuda:1, mps)") from None


def _resolve_dtype(value: Any, device: str) -> str:
    if value not in DTYPES:
        raise ConfigError(f"engine option dtype must be one of {', '.join(DTYPES)}, got {value!r}")
    if value != "auto":
        return str(value)
    if device.startswith("cuda"):
        return "bfloat16"
    if device.startswith("mps"):
        return "float16"
    return "bfloat16" if has_fast_bf16() else "float32"


def parse_options(options: Mapping[str, Any]) -> HfOptions:
    """Checked options with defaults filled in; ``ConfigError`` for unknown names or bad values."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown option(s) for the hf engine: {', '.join(unknown)} (known: {', '.join(OPTIONS)})")
    device = _resolve_device(options.get("device", "auto"))
    max_len, threads = options.get("max_model_len"), options.get("threads")
    return HfOptions(
        dtype=_resolve_dtype(options.get("dtype", "auto"), device),
        device=device,
        batch_size=_positive_int("batch_size", options.get("batch_size", BATCH_SIZE)),
        max_model_len=None if max_len is None else _positive_int("max_model_len", max_len),
        threads=None if threads is None else _positive_int("threads", threads),
    )


@dataclass
class _Row:
    """One sample being decoded."""

    key: Any
    index: int
    prompt_slot: int
    generator: Any
    copies: int = 1
    tokens: list[int] = field(default_factory=list)
    logprob: float = 0.0
    finish_reason: str | None = None


@dataclass(frozen=True)
class _Prompt:
    ids: list[int]

    @property
    def padded_length(self) -> int:
        return (len(self.ids) // PAD_MULTIPLE + 1) * PAD_MULTIPLE


@dataclass(frozen=True)
class _Limits:
    max_tokens: int
    max_model_len: int | None
    stop_ids: frozenset[int]


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


ATTENTION = "boundary_gqa"
"""The name ``_gqa_attention`` is registered under in transformers' attention interfaces."""


def _gqa_attention(
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


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(ATTENTION, _gqa_attention)
    AttentionMaskInterface.register(ATTENTION, eager_mask)


def _new_cache(capacity: int, config: Any) -> Any:
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


class _Batch:
    """Rows whose prompts share a padded length, decoded together until every row finishes.

    The tensors (KV cache, mask, positions, logits) hold the live rows, then ``filler`` copies
    of the first live row that keep every matrix product at ``MIN_ROWS`` rows or more."""

    def __init__(
        self,
        engine: TransformersEngine,
        prompts: list[_Prompt],
        rows: list[_Row],
        config: SamplingConfig,
        limits: _Limits,
    ):
        self.engine, self.prompts, self.rows, self.config, self.limits = engine, prompts, rows, config, limits
        self.filler = max(0, MIN_ROWS - len(rows))
        self.cache: Any = None
        self.mask: Any = None
        self.positions: Any = None
        self.logits: Any = None

    def prefill(self) -> None:
        import torch

        width, pad, device = self.prompts[0].padded_length, self.engine.pad_id, self.engine.device
        ids = torch.tensor([[pad] * (width - len(p.ids)) + p.ids for p in self.prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p.ids)) + [1] * len(p.ids) for p in self.prompts], device=device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        self.cache = _new_cache(width + min(self.limits.max_tokens, CACHE_ROOM), self.engine.model.config)
        with torch.inference_mode():
            out = self.engine.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=self.cache,
                use_cache=True,
                logits_to_keep=MIN_ROWS,  # the LM head product has MIN_ROWS rows even for one prompt
            )
            slots = [row.prompt_slot for row in self.rows]
            index = torch.tensor(slots + slots[:1] * self.filler, device=device)
            self.cache.batch_select_indices(index)
            self.mask, self.positions = mask[index], positions[index, -1:]
            self.logits = out.logits[:, -1].float()[index]

    def step(self) -> list[_Row]:
        """Sample one token for every live row, advance the model, and return the rows that
        just finished."""
        import torch

        with torch.inference_mode():
            logits = self.logits[: len(self.rows)]
            tokens = sample_tokens(logits, self.config, self._uniforms().to(logits.device))
            logprobs = logits.log_softmax(dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
            finished = self._record(tokens.tolist(), logprobs.tolist())
            live = [i for i, row in enumerate(self.rows) if row.finish_reason is None]
            if live:
                self._forward(tokens, live)
        return finished

    def _uniforms(self) -> Any:
        """One uniform number per live row from the row's own generator (unused when greedy)."""
        import torch

        if self.config.temperature == 0:
            return torch.zeros(len(self.rows), dtype=torch.float64)
        return torch.cat([torch.rand(1, generator=row.generator, dtype=torch.float64) for row in self.rows])

    def _record(self, tokens: list[int], logprobs: list[float]) -> list[_Row]:
        finished: list[_Row] = []
        for row, token, logprob in zip(self.rows, tokens, logprobs, strict=True):
            row.tokens.append(token)
            row.logprob += logprob
            row.finish_reason = self._finish_reason(row)
            if row.finish_reason is not None:
                finished.append(row)
        return finished

    def _finish_reason(self, row: _Row) -> str | None:
        """vLLM's order: the length limits first, then the stop tokens."""
        limits = self.limits
        total = len(self.prompts[row.prompt_slot].ids) + len(row.tokens)
        if len(row.tokens) >= limits.max_tokens or (limits.max_model_len is not None and total >= limits.max_model_len):
            return "length"
        if row.tokens[-1] in limits.stop_ids:
            return "stop"
        return None

    def _forward(self, tokens: Any, live: list[int]) -> None:
        import torch

        tokens = torch.cat([tokens, tokens[:1].expand(self.filler)])
        if len(live) < len(self.rows):  # drop finished rows from every tensor
            self.filler = max(0, MIN_ROWS - len(live))
            index = torch.tensor(live + live[:1] * self.filler, device=tokens.device)
            self.cache.batch_select_indices(index)
            self.mask, self.positions, tokens = self.mask[index], self.positions[index], tokens[index]
            self.rows = [self.rows[i] for i in live]
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.mask), 1)], dim=-1)
        self.positions = self.positions + 1
        out = self.engine.model(
            input_ids=tokens.unsqueeze(-1),
            attention_mask=self.mask,
            position_ids=self.positions,
            past_key_values=self.cache,
            use_cache=True,
        )
        self.logits = out.logits[:, -1].float()

    @property
    def done(self) -> bool:
        return all(row.finish_reason is not None for row in self.rows)


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
            _register_attention()
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
        limits = _Limits(config.max_tokens, self.max_model_len, self.stop_ids)
        prompts = self._tokenize(requests)
        for batch_prompts, rows in _plan(requests, prompts, config, self.options.batch_size):
            batch = _Batch(self, batch_prompts, rows, config, limits)
            try:
                batch.prefill()
                while not batch.done:
                    for row in batch.step():
                        yield from self._complete(row, progress)
            except RuntimeError as exc:  # out of memory, a device error
                raise EngineError(f"transformers generation failed: {_first_line(exc)}") from exc

    def _tokenize(self, requests: Sequence[GenerationRequest]) -> dict[str, _Prompt]:
        prompts: dict[str, _Prompt] = {}
        for request in requests:
            if request.prompt not in prompts:
                ids = self.tokenizer(request.prompt, add_special_tokens=True)["input_ids"]
                if not ids:
                    raise EngineError(f"request {request.key!r} has an empty prompt")
                if self.max_model_len is not None and len(ids) >= self.max_model_len:
                    raise EngineError(f"a prompt of {len(ids)} tokens does not fit max_model_len {self.max_model_len}")
                prompts[request.prompt] = _Prompt(ids)
        return prompts

    def _complete(self, row: _Row, progress: ProgressFn | None) -> Iterator[Completion]:
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
            )

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


def _rows(request: GenerationRequest, config: SamplingConfig) -> list[_Row]:
    """The rows that draw ``request``'s samples: one per sample, or at temperature 0 one row
    standing for all of them (greedy decoding ignores the seed)."""
    import torch

    if config.temperature == 0:
        return [_Row(request.key, request.first_index, 0, None, copies=request.count)] if request.count else []
    return [
        _Row(request.key, i, 0, torch.Generator().manual_seed(request.seed + i))
        for i in range(request.first_index, request.first_index + request.count)
    ]


def _plan(
    requests: Sequence[GenerationRequest],
    prompts: Mapping[str, _Prompt],
    config: SamplingConfig,
    batch_size: int,
) -> Iterator[tuple[list[_Prompt], list[_Row]]]:
    """Batches of at most ``batch_size`` rows whose prompts share a padded length: each batch's
    distinct prompts, and its rows pointing into them by ``prompt_slot``."""
    by_width: dict[int, list[tuple[str, _Row]]] = {}
    for request in requests:
        width = prompts[request.prompt].padded_length
        by_width.setdefault(width, []).extend((request.prompt, row) for row in _rows(request, config))
    for width in sorted(by_width):
        pairs = by_width[width]
        for start in range(0, len(pairs), batch_size):
            yield _slotted(pairs[start : start + batch_size], prompts)


def _slotted(pairs: list[tuple[str, _Row]], prompts: Mapping[str, _Prompt]) -> tuple[list[_Prompt], list[_Row]]:
    slots: dict[str, int] = {}
    for text, row in pairs:
        row.prompt_slot = slots.setdefault(text, len(slots))
    return [prompts[text] for text in slots], [row for _, row in pairs]
