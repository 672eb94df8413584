"""Terminal output: the consoles, progress bars on stderr, and the pass@k, status and queue tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, Task, TextColumn, TimeElapsedColumn
from rich.progress_bar import ProgressBar
from rich.table import Table

from boundary.api.analysis.estimator import k_grid
from boundary.api.analysis.report import RunReport
from boundary.api.autoscale_policy import QueueView
from boundary.api.status import RunStatus
from boundary.api.types import ProgressFn

stderr = Console(stderr=True)


def stdout() -> Console:
    """The console for results: as wide as the terminal, and never wrapped when piped."""
    console = Console()
    return console if console.is_terminal else Console(width=250)


class PhaseBars:
    """One progress bar per phase (sampling, grading), drawn on stderr."""

    def __init__(self, enabled: bool = True):
        self._progress = Progress(
            TextColumn("{task.description:<9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("eta {task.fields[eta]}"),
            console=stderr,
            disable=not enabled,
        )

    def __enter__(self) -> PhaseBars:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def __call__(self, phase: str, total: int) -> ProgressFn:
        task = self._progress.add_task(phase, total=total, rate="", eta="-:--:--")

        def advance(n: int) -> None:
            self._progress.advance(task, n)
            rate, eta = phase_rate(self._progress.tasks[task])
            self._progress.update(task, rate=rate, eta=eta)

        return advance


def phase_rate(task: Task) -> tuple[str, str]:
    """Items per second since the phase began, and the time left at that pace. (rich's own
    estimate looks at the last few updates only: a batch engine that finishes 40 samples in
    one step after three minutes would read as thousands per second, with no time left.)"""
    elapsed = task.elapsed
    if not elapsed or not task.completed:
        return "", "-:--:--"
    rate = task.completed / elapsed
    left = max(0.0, (task.total or 0) - task.completed) / rate
    return f"{rate:,.1f}/s", str(timedelta(seconds=int(left + 0.5)))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _tokens(value: float | None) -> str:
    """A mean token count per sample: whole tokens from 100 up, one decimal below."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _cell(r: RunReport, k: int, intervals: dict[int, dict[str, list[float]]] | None) -> str:
    value = _fmt(r.pass_at_k.get(k))
    band = (intervals or {}).get(r.run_id, {}).get(str(k))
    return f"{value}\n[{_fmt(band[0])}, {_fmt(band[1])}]" if band else value


def passk_table(reports: Sequence[RunReport], intervals: dict[int, dict[str, list[float]]] | None = None) -> Table:
    """One row per run: its sampler (SamplerSpec.label), pass@k in percent for k = 1, 2, 4, ...,
    coverage (pass@n), with bootstrap intervals under each value when given, and the tokens
    decoded per sample (rejected proposals and discarded particles included)."""
    ks = sorted({k for r in reports for k in k_grid(max(r.pass_at_k, default=0)) if k != max(r.pass_at_k, default=0)})
    table = Table(title="pass@k (%)", title_justify="left")
    for name in ("run", "model", "role", "benchmark", "template", "sampler", "T", "problems", "n"):
        table.add_column(name, justify="right" if name in ("run", "T", "problems", "n") else "left")
    for k in ks:
        table.add_column(f"@{k}", justify="right")
    table.add_column("coverage", justify="right")
    table.add_column("tok/sample", justify="right")
    table.add_column("status")
    for r in reports:
        n_used = max(r.pass_at_k, default=0)
        table.add_row(
            str(r.run_id),
            r.model,
            r.role,
            f"{r.benchmark} v{r.benchmark_version}",
            r.template,
            r.sampler_label,
            f"{r.temperature:g}",
            str(r.problems),
            str(n_used),
            *[_cell(r, k, intervals) for k in ks],
            _cell(r, max(r.pass_at_k, default=0), intervals),
            _tokens(r.mean_decoded_tokens),
            "partial" if r.partial else "complete",
        )
    return table


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def status_table(items: Sequence[RunStatus]) -> Table:
    """One row per run: its sampler, progress of sampling and grading, failures, rate and ETA."""
    table = Table(title="runs", title_justify="left")
    right = ("run", "T", "sampled", "graded", "failed", "samples/s", "eta")
    for name in ("run", "model", "role", "benchmark", "sampler", "T", "progress", "sampled", "graded", "failed",
                 "samples/s", "eta", "state"):
        table.add_column(name, justify="right" if name in right else "left")
    for s in items:
        state = s.state
        table.add_row(
            str(s.run_id), s.model, s.role, s.benchmark, s.sampler, f"{s.temperature:g}",
            ProgressBar(total=max(1, 2 * s.expected), completed=s.sampled + s.graded, width=20),
            f"{s.sampled}/{s.expected}", f"{s.graded}/{s.expected}",
            f"{s.failed_problems} problems" if s.failed_problems else "0",
            f"{s.samples_per_s:,.1f}", _duration(s.eta_s), state,
        )
    failures = sorted({f for s in items for f in s.failures})
    if failures:
        table.caption = "failed: " + "; ".join(failures[:3])
    return table


def batches_table(items: Sequence[RunStatus]) -> Table | None:
    """One row per queue: the unfinished batches of the runs shown, waiting, held by live
    workers, and held by dead ones (None when no run has unfinished batches)."""
    totals: dict[str, list[int]] = {}
    for s in items:
        for queue, b in s.batches.items():
            t = totals.setdefault(queue, [0, 0, 0])
            t[0], t[1], t[2] = t[0] + b.waiting, t[1] + b.held, t[2] + b.held_by_dead
    if not totals:
        return None
    table = Table(title="batches", title_justify="left")
    for name in ("queue", "waiting", "held by live workers", "held by dead workers"):
        table.add_column(name, justify="left" if name == "queue" else "right")
    for queue, (waiting, held, dead) in sorted(totals.items()):
        table.add_row(queue, str(waiting), str(held), f"[bold red]{dead}[/]" if dead else "0")
    if any(t[2] for t in totals.values()):
        table.caption = ("held by dead workers: their lease ran out; any live worker, or the autoscaler, "
                         "queues them again within a heartbeat")
    return table


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def queues_table(views: Sequence[QueueView], workers: bool = False, caption: str | None = None) -> Table:
    """One row per queue: its depth now, and the autoscaler's current and desired workers and
    last decision ("-" where no controller scales the queue)."""
    table = Table(title="queues", title_justify="left", caption=caption)
    names = ["queue", "waiting", "reserved", "workers", "desired", "stopping", "decision", "updated"]
    for name in names + (["processes"] if workers else []):
        right = name in ("waiting", "reserved", "workers", "desired", "stopping")
        table.add_column(name, justify="right" if right else "left")
    for v in views:
        row = [
            v.queue, str(v.waiting), str(v.reserved), "-" if v.current is None else str(v.current),
            "-" if v.desired is None else str(v.desired), str(v.stopping) if v.controller else "-",
            v.reason or ("no autoscaler" if v.controller is None else ""),
            ("stale, " if v.stale else "") + _ago(v.age_s) + (f" by {v.controller}" if v.controller else ""),
        ]
        if workers:
            row.append(", ".join(f"{w.get('pid')} ({w.get('state')})" for w in v.workers) or "-")
        table.add_row(*row)
    return table
