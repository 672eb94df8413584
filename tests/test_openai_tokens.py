"""The openai engine's token-level interface against a token-level fake of vLLM's server.

``TokenServer`` answers ``/v1/models``, ``/tokenize``, ``/detokenize`` and ``/v1/completions``
(prompts as token ids) from an exact Markov-chain model (boundary.workers.engines.markov): a draw
is the model's own seeded draw, with its exact log q (``processed_logprobs`` mode) or log p (raw
mode), and an echo answers the exact raw log p of every prompt token after the first. Switches
take endpoints away or answer tokens as text, as other servers do."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from boundary.api.errors import EngineError
from boundary.api.models import ModelSpec
from boundary.api.samplers import sampler_spec
from boundary.api.types import Continuation, Cost, Extension, GenerationRequest, Proposal, SamplingConfig, TokenEngine
from boundary.workers.engines.markov import MarkovTokens
from boundary.workers.engines.openai.engine import OpenAIEngine
from boundary.workers.engines.openai.tokens import OpenAITokens
from boundary.workers.samplers import generate
from tests.support.http import serving

MODEL = "fake-token-model"
SPEC = ModelSpec(name="fake", path=MODEL, role="base")
FAST = {"backoff_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5.0}
WORDS = ["zero", "one", "two", "three", "four", "<eos>"]
MAX_MODEL_LEN = 64


@dataclass
class TokenServer:
    """The fake's model and switches, shared with the handler threads; ``received`` holds
    (path, body) of every POST."""

    model: MarkovTokens = field(default_factory=lambda: MarkovTokens(np.random.default_rng(3).normal(0, 1.5, (6, 6)),
                                                                     stop=5, words=WORDS))
    port: int = 0
    raw: bool = False
    missing: frozenset[str] = frozenset()
    text_tokens: bool = False
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def posts(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, body in self.received if p == path]

    def encode(self, text: str) -> list[int]:
        return [WORDS.index(w) if w in WORDS else len(w) % 5 for w in text.split()]

    def token(self, token: int) -> str:
        return WORDS[token] if self.text_tokens else f"token_id:{token}"

    def draw(self, body: dict[str, Any]) -> dict[str, Any]:
        top_k = body.get("top_k", 0)
        proposal = Proposal(body["temperature"], body["top_p"], top_k if top_k > 0 else 0)
        [c] = self.model.extend([Extension(None, tuple(body["prompt"]), body["max_tokens"], body["seed"])], proposal)
        values = c.logp if self.raw else c.logq
        choice = {"index": 0, "text": self.model.decode(c.tokens), "finish_reason": "stop" if c.stopped else "length",
                  "stop_reason": None,
                  "logprobs": {"tokens": [self.token(t) for t in c.tokens], "token_logprobs": list(values)}}
        return {"choices": [choice], "usage": {"prompt_tokens": len(body["prompt"]),
                                               "completion_tokens": len(c.tokens)}}

    def echo(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body["prompt"]
        values = [None] + [float(self.model.logp[a, b]) for a, b in zip(prompt, prompt[1:])]
        choice = {"index": 0, "text": self.model.decode(prompt), "finish_reason": "length",
                  "logprobs": {"tokens": [self.token(t) for t in prompt], "token_logprobs": values}}
        return {"choices": [choice], "usage": {"prompt_tokens": len(prompt), "completion_tokens": 1}}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: TokenServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        else:
            self.send_json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.state.lock:
            self.state.received.append((self.path, body))
        state = self.state
        if self.path in state.missing:
            self.send_json(404, {"detail": "Not Found"})
        elif self.path == "/tokenize":
            ids = state.encode(body["prompt"])
            self.send_json(200, {"count": len(ids), "max_model_len": MAX_MODEL_LEN, "tokens": ids})
        elif self.path == "/detokenize":
            self.send_json(200, {"prompt": " ".join(WORDS[t] for t in body["tokens"])})
        elif self.path == "/v1/completions" and body.get("echo") and body["max_tokens"] == 0:
            self.send_json(200, state.echo(body))
        elif self.path == "/v1/completions" and not body.get("echo"):
            self.send_json(200, state.draw(body))
        else:
            self.send_json(400, {"error": {"message": f"the fake does not answer {self.path} {body}", "code": 400}})


@pytest.fixture
def server() -> Iterator[TokenServer]:
    state = TokenServer()
    with serving(Handler, state) as state.port:
        yield state


def engine_for(server: TokenServer, **options: Any) -> OpenAIEngine:
    return OpenAIEngine.load(SPEC, {"base_url": server.base_url, **FAST, **options}, Path("/nonexistent"))


def tokens_of(server: TokenServer, **options: Any) -> TokenEngine:
    return engine_for(server, **options).token_engine()


EXTENSIONS = [Extension(("k", i), (i % 5, (i * 3) % 5), 6, 1000 + i) for i in range(12)]
PROPOSAL = Proposal(temperature=0.5, top_p=0.9, top_k=3)


# -- what comes back ------------------------------------------------------------------------------


def test_values_pass_through_exactly(server: TokenServer) -> None:
    tokens = tokens_of(server, concurrency=4)
    got = tokens.extend(EXTENSIONS, PROPOSAL)
    want = server.model.extend(EXTENSIONS, PROPOSAL)

    assert isinstance(tokens, TokenEngine) and tokens.name == "openai"
    assert [c.key for c in got] == [e.key for e in EXTENSIONS]  # in order
    for g, w, e in zip(got, want, EXTENSIONS):
        assert (g.tokens, g.logp, g.logq, g.stopped) == (w.tokens, w.logp, w.logq, w.stopped)
        n = len(g.tokens)
        assert g.cost == Cost(decoded_tokens=n + 1, prefill_tokens=2 * len(e.context) + n, engine_calls=2)
    assert any(c.stopped for c in got) and any(not c.stopped for c in got)
    assert any(lp != lq for c in got for lp, lq in zip(c.logp, c.logq))


def test_requests_carry_the_proposal_seed_and_token_ids(server: TokenServer) -> None:
    tokens = tokens_of(server)
    [c] = tokens.extend([EXTENSIONS[0]], PROPOSAL)
    draws = [b for b in server.posts("/v1/completions") if not b.get("echo")]
    [draw] = [b for b in draws if b["seed"] == 1000]
    [score] = [b for b in server.posts("/v1/completions") if b.get("echo")]

    assert draw["prompt"] == list(EXTENSIONS[0].context) and draw["max_tokens"] == 6
    assert (draw["temperature"], draw["top_p"], draw["top_k"]) == (0.5, 0.9, 3)
    assert draw["logprobs"] == 1 and draw["return_tokens_as_token_ids"] is True
    assert (draw["min_p"], draw["repetition_penalty"]) == (0.0, 1.0)  # the server's defaults cannot change q
    assert score["prompt"] == [*EXTENSIONS[0].context, *c.tokens]
    assert (score["max_tokens"], score["logprobs"], score["return_tokens_as_token_ids"]) == (0, 1, True)


def test_no_top_k_is_sent_as_minus_one(server: TokenServer) -> None:
    tokens_of(server).extend([EXTENSIONS[0]], Proposal(temperature=0.25))
    assert [b["top_k"] for b in server.posts("/v1/completions") if not b.get("echo")][-1] == -1


def test_a_continuation_depends_only_on_its_context_and_seed(server: TokenServer) -> None:
    tokens = tokens_of(server, concurrency=8)
    alone = tokens.extend([EXTENSIONS[5]], PROPOSAL)
    among = tokens.extend(EXTENSIONS, PROPOSAL)[5]
    again = tokens.extend([EXTENSIONS[5]], PROPOSAL)
    reseeded = [tokens.extend([Extension("x", EXTENSIONS[5].context, 6, seed)], Proposal(1.0))[0].tokens
                for seed in range(8)]
    assert alone == again == [among]
    assert len(set(reseeded)) > 1


def test_encode_decode_and_context_length_come_from_the_server(server: TokenServer) -> None:
    tokens = tokens_of(server)
    assert tokens.encode("two three one") == [2, 3, 1]
    assert tokens.max_context == MAX_MODEL_LEN
    assert tokens.decode([2, 3, 1]) == "two three one"
    assert server.posts("/detokenize")[-1]["tokens"] == [2, 3, 1]


def test_stop_tokens_are_learned_and_left_out_of_the_text(server: TokenServer) -> None:
    tokens = tokens_of(server)
    assert tokens.stop_ids == frozenset()
    got = tokens.extend(EXTENSIONS, PROPOSAL)
    stopped = next(c for c in got if c.stopped)
    assert tokens.stop_ids == frozenset({5})
    assert tokens.decode(stopped.tokens) == " ".join(WORDS[t] for t in stopped.tokens[:-1])


def test_the_check_runs_once_per_engine(server: TokenServer) -> None:
    engine = engine_for(server)
    first, second = engine.token_engine(), engine.token_engine()
    probes = [b for b in server.posts("/v1/completions") if b.get("top_k") == 1]
    assert first is second and len(probes) == 1
    assert probes[0]["temperature"] == 1.0 and probes[0]["max_tokens"] == 1


def test_samplers_run_on_the_openai_engine(server: TokenServer) -> None:
    """power-smc end to end through the engine: every sample is drawn, and its cost is what the
    server's answers say (two requests an extension)."""
    engine = engine_for(server, concurrency=4)
    spec = sampler_spec("power-smc", {"particles": 3, "block_tokens": 2})
    config = SamplingConfig(temperature=1.0, top_p=1.0, max_tokens=5, seed=0)
    done = list(generate(engine, spec, [GenerationRequest("q", "two three", seed=7, first_index=0, count=3)], config))
    extends = len([b for b in server.posts("/v1/completions") if b.get("echo")])
    assert sorted(c.index for c in done) == [0, 1, 2]
    assert all(0 < c.num_tokens <= 5 and c.cost is not None and c.cost.engine_calls > 0 for c in done)
    assert sum(c.cost.engine_calls for c in done if c.cost) == 2 * extends


# -- what is refused --------------------------------------------------------------------------------


def test_a_raw_mode_server_is_refused_in_one_line(server: TokenServer) -> None:
    server.raw = True
    engine = engine_for(server)
    with pytest.raises(EngineError) as raised:
        engine.token_engine()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("the openai engine needs log-probabilities under the proposal")
    assert f"127.0.0.1:{server.port}/v1" in message
    assert message.endswith("start vLLM with --logprobs-mode processed_logprobs")
    assert server.posts("/v1/completions")[-1]["top_k"] == 1  # refused at the probe, before anything is drawn


@pytest.mark.parametrize("path", ["/tokenize", "/detokenize"])
def test_a_server_without_the_endpoint_is_refused(server: TokenServer, path: str) -> None:
    server.missing = frozenset({path})
    with pytest.raises(EngineError) as raised:
        tokens_of(server)
    message = str(raised.value)
    assert "\n" not in message
    assert message == (f"the openai engine needs the server's {path} endpoint (vLLM serves it next to /v1), "
                       f"and the server at http://127.0.0.1:{server.port} has none (404: Not Found)")


def test_a_server_without_token_ids_is_refused(server: TokenServer) -> None:
    server.text_tokens = True
    with pytest.raises(EngineError, match="answered token 'zero|one|two|three|four|<eos>'.*return_tokens_as_token_ids"):
        tokens_of(server)


def test_an_empty_extension_asks_nothing(server: TokenServer) -> None:
    tokens = tokens_of(server)
    before = len(server.posts("/v1/completions"))
    assert tokens.extend([Extension("e", (1, 2), 0, 3)], PROPOSAL) == [Continuation("e", (), (), (), False, Cost())]
    assert len(server.posts("/v1/completions")) == before


def test_openai_tokens_is_the_engines_token_engine(server: TokenServer) -> None:
    assert isinstance(tokens_of(server), OpenAITokens)


def test_boundary_run_with_a_raw_mode_server_refuses_in_one_line_and_registers_nothing(
        server: TokenServer, tmp_path: Path, own_engine_cache: None) -> None:
    """What a user sees: the sampler refused before any run, model or benchmark is stored."""
    from click.testing import CliRunner
    from sqlalchemy import create_engine, text

    from boundary.api.cli import cli

    server.raw = True
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = CliRunner().invoke(cli, [
        "run", "--model", "fake/token-model", "-o", f"model={MODEL}", "--engine", "openai", "--base-url",
        server.base_url, "--benchmark", "arith", "--limit", "2", "-k", "1", "--sampler", "power-mcmc",
        "--database-url", url, "-q"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: the openai engine needs log-probabilities under the proposal")
    assert len(result.stderr.strip().splitlines()) == 1
    engine = create_engine(url)
    with engine.connect() as conn:
        counts = [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in ("runs", "models", "benchmarks")]
    engine.dispose()
    assert counts == [0, 0, 0]
