"""The sampling-efficiency gap (Yue et al.): dSE = pass@1 of the RL model minus pass@k of its
base model, at a chosen k. Negative: the base model, sampled k times, does better."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from boundary.api.analysis.passk import passk_table
from boundary.api.db import Database
from boundary.api.errors import ConfigError


@dataclass(frozen=True)
class Gap:
    rl_run: int
    base_run: int
    k: int
    rl_pass_at_1: float
    base_pass_at_k: float

    @property
    def delta(self) -> float:
        return self.rl_pass_at_1 - self.base_pass_at_k

    def to_dict(self) -> dict:
        return {"rl_run": self.rl_run, "base_run": self.base_run, "k": self.k, "rl_pass_at_1": self.rl_pass_at_1,
                "base_pass_at_k": self.base_pass_at_k, "delta_se": self.delta}


def sampling_efficiency_gap(session: Session, rl_run: int, base_run: int, k: int) -> Gap:
    if rl_run == base_run:
        raise ConfigError("the RL run and the base run must differ")
    (rl,) = passk_table(session, [rl_run], [1])
    (base,) = passk_table(session, [base_run], [k])
    return Gap(rl_run, base_run, k, rl.value, base.value)


def load_gap(db: Database, rl_run: int, base_run: int, k: int) -> Gap:
    with db.session() as session:
        return sampling_efficiency_gap(session, rl_run, base_run, k)
