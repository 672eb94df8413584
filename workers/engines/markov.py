"""A token model whose sequence distribution is known exactly: a fixed random Markov chain over a
few tokens, one of them a stop token. It gives the exact log p and log q the samplers need, so
the samplers can be checked against the distribution they target (every sequence up to a length
cap can be enumerated), and it is the echo engine's token-level interface, so a fleet can run a
power-sampling batch without a model. Each continuation's draws are a hash of its seed and the
position, so a continuation depends only on its context and seed."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from boundary.api.types import Continuation, Cost, Extension, Proposal

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _uniforms(seeds: np.ndarray, position: int) -> np.ndarray:
    """splitmix64 of (seed, position), as uniforms in [0, 1): one per seed, independent across
    positions, reproducible anywhere."""
    with np.errstate(over="ignore"):
        z = seeds.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = z + np.uint64(position + 1) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class MarkovTokens:
    """Tokens 0 .. size - 1; token ``stop`` ends a sequence. The next token depends on the last
    one only, with raw probabilities ``softmax(logits[last])``; a context's first token may be
    any token (a prompt), and the chain continues from its last."""

    name = "markov"
    max_context = None

    def __init__(self, logits: np.ndarray, stop: int, words: Sequence[str] | None = None):
        self.logits = np.asarray(logits, dtype=np.float64)
        self.size = self.logits.shape[0]
        self.stop = stop
        self.stop_ids = frozenset({stop})
        self.words = list(words) if words is not None else [chr(ord("a") + i) for i in range(self.size)]
        self.logp = self.logits - np.logaddexp.reduce(self.logits, axis=1, keepdims=True)
        self._proposals: dict[Proposal, np.ndarray] = {}

    @classmethod
    def random(cls, size: int, seed: int, spread: float = 1.5) -> MarkovTokens:
        """A chain with normally distributed logits (standard deviation ``spread``); the last
        token is the stop token."""
        rng = np.random.default_rng(seed)
        return cls(rng.normal(0.0, spread, size=(size, size)), stop=size - 1)

    # --- the distributions -------------------------------------------------------------

    def proposal_logq(self, proposal: Proposal) -> np.ndarray:
        """log q(next | last) for every pair: the logits at the proposal's temperature,
        truncated to top-k, then to the nucleus top-p of what top-k kept (vLLM's rule: keep the
        most likely tokens until their mass reaches top_p, always at least one), renormalized."""
        if proposal not in self._proposals:
            scaled = self.logits / proposal.temperature
            logq = scaled - np.logaddexp.reduce(scaled, axis=1, keepdims=True)
            keep = np.ones_like(logq, dtype=bool)
            order = np.argsort(-logq, axis=1, kind="stable")
            if proposal.top_k:
                for row in range(self.size):
                    keep[row, order[row, proposal.top_k:]] = False
            if proposal.top_p < 1:  # on the top-k renormalized, as vLLM applies them
                for row in range(self.size):
                    probs = np.where(keep[row, order[row]], np.exp(logq[row, order[row]]), 0.0)
                    probs = probs / probs.sum()
                    drop = np.cumsum(probs) - probs >= proposal.top_p
                    keep[row, order[row, drop]] = False
            kept = np.where(keep, logq, -np.inf)
            self._proposals[proposal] = kept - np.logaddexp.reduce(kept, axis=1, keepdims=True)
        return self._proposals[proposal]

    def sequences(self, first: int, cap: int) -> list[tuple[int, ...]]:
        """Every complete continuation of ``first``: a stop token within ``cap`` tokens, or
        ``cap`` tokens without one."""
        out: list[tuple[int, ...]] = []
        others = [t for t in range(self.size) if t != self.stop]
        for length in range(1, cap + 1):
            for body in itertools.product(others, repeat=length - 1):
                out.append((*body, self.stop))
        out.extend(itertools.product(others, repeat=cap))
        return out

    def log_prob(self, first: int, sequence: Sequence[int], table: np.ndarray | None = None) -> float:
        table = self.logp if table is None else table
        last, total = first, 0.0
        for token in sequence:
            total += table[last, token]
            last = token
        return float(total)

    def power_distribution(self, first: int, cap: int, alpha: float) -> dict[tuple[int, ...], float]:
        """p(x)^alpha / Z over the complete continuations of ``first``."""
        seqs = self.sequences(first, cap)
        logs = np.array([alpha * self.log_prob(first, s) for s in seqs])
        probs = np.exp(logs - np.logaddexp.reduce(logs))
        return dict(zip(seqs, probs.tolist()))

    def proposal_distribution(self, first: int, cap: int, proposal: Proposal) -> dict[tuple[int, ...], float]:
        """What plain sampling from q gives over the complete continuations of ``first``."""
        table = self.proposal_logq(proposal)
        return {s: math.exp(self.log_prob(first, s, table)) for s in self.sequences(first, cap)}

    # --- the token engine ----------------------------------------------------------------

    def encode(self, prompt: str) -> list[int]:
        return [sum(prompt.encode()) % self.size if self.size > 1 else 0]

    def decode(self, tokens: Sequence[int]) -> str:
        return " ".join(self.words[t] for t in tokens if t != self.stop)

    def extend(self, requests: Sequence[Extension], proposal: Proposal) -> list[Continuation]:
        logq_table = self.proposal_logq(proposal)
        cdf = np.cumsum(np.exp(logq_table), axis=1)
        cdf[:, -1] = np.inf  # a uniform that rounds past the total lands on the last kept token
        count = len(requests)
        last = np.array([r.context[-1] for r in requests], dtype=np.int64)
        seeds = np.array([r.seed for r in requests], dtype=np.uint64)
        remaining = np.array([r.max_new_tokens for r in requests], dtype=np.int64)
        live = remaining > 0
        tokens: list[list[int]] = [[] for _ in range(count)]
        lps: list[list[float]] = [[] for _ in range(count)]
        lqs: list[list[float]] = [[] for _ in range(count)]
        stopped = np.zeros(count, dtype=bool)
        position = 0
        while live.any():
            rows = np.nonzero(live)[0]
            u = _uniforms(seeds[rows], position)
            state = last[rows]
            chosen = (cdf[state] <= u[:, None]).sum(axis=1)
            chosen = np.where(np.isfinite(logq_table[state, chosen]), chosen,
                              np.argmax(np.where(np.isfinite(logq_table[state]), np.arange(self.size), -1), axis=1))
            lp, lq = self.logp[state, chosen].tolist(), logq_table[state, chosen].tolist()
            for j, (row, token) in enumerate(zip(rows.tolist(), chosen.tolist())):
                tokens[row].append(token)
                lps[row].append(lp[j])
                lqs[row].append(lq[j])
            last[rows] = chosen
            remaining[rows] -= 1
            stopped[rows] = chosen == self.stop
            live[rows] = (remaining[rows] > 0) & ~stopped[rows]
            position += 1
        flags = stopped.tolist()
        return [
            Continuation(r.key, tuple(tokens[i]), tuple(lps[i]), tuple(lqs[i]), flags[i],
                         Cost(len(tokens[i]), len(r.context), 1))
            for i, r in enumerate(requests)
        ]
