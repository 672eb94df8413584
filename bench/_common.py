"""What the benches share: the tally of a contestant's measurements. Not a bench itself; a bench
(run as ``python bench/x.py``, so this folder is on its path) imports it as ``from _common import Tally``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Tally:
    """Items measured, CPU seconds, wall seconds and passes (correct answers, passing samples), summed over
    rounds."""

    items: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    passed: int = 0

    def add(self, items: int, cpu_s: float, wall_s: float, passed: int) -> None:
        self.items += items
        self.cpu_s += cpu_s
        self.wall_s += wall_s
        self.passed += passed

    @property
    def per_core(self) -> float:
        return self.items / self.cpu_s

    @property
    def per_wall(self) -> float:
        return self.items / self.wall_s

    @property
    def ms(self) -> float:
        """CPU milliseconds per item."""
        return self.cpu_s / self.items * 1e3
