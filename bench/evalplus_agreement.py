"""Verdicts of boundary's sandbox against EvalPlus's own evaluator, on seeded mutants.

    pip install evalplus==0.3.1     # in a separate environment is fine: it is only run here
    python bench/evalplus_agreement.py [--per-task 3] [--seed 0] [--data-dir ../shared/data]
        [--evalplus-python PATH]    # an interpreter that has evalplus (default: this one)

Each HumanEval+ canonical solution gets ``--per-task`` mutants, each one seeded AST edit: an
arithmetic operator swapped (``//`` for ``/`` among them), a comparison flipped, an integer
constant moved by one, a boolean constant negated (a task with nothing to edit keeps its
canonical solution: EvalPlus wants a sample for every task). The same samples file is graded by
``python -m evalplus.evaluate --dataset humaneval`` (EvalPlus's own ground truth, time limits
and comparison; its data read from the same file through HUMANEVAL_OVERRIDE_PATH, no network)
and by ``boundary``'s CodeGrader in the bubblewrap sandbox, and every sample whose verdict
differs is printed. EvalPlus passes a sample when both its base and plus inputs pass, which is
what boundary's ``humanevalplus`` benchmark asks too (with HumanEval's ``check`` besides: a
sample the check fails but EvalPlus passes is listed as such).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SWAPS = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Div, ast.Div: ast.FloorDiv,
    ast.Mod: ast.FloorDiv, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
}


def _sites(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    sites = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in SWAPS:
            sites.append((node, "op"))
        elif isinstance(node, ast.Compare) and type(node.ops[0]) in SWAPS:
            sites.append((node, "cmp"))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, bool):
            sites.append((node, "const"))
    return sites


def mutate(source: str, rng: random.Random) -> str | None:
    """``source`` with one seeded edit, or None when it has nothing to edit."""
    tree = ast.parse(source)
    sites = _sites(tree)
    if not sites:
        return None
    node, kind = rng.choice(sites)
    if kind == "op":
        node.op = SWAPS[type(node.op)]()
    elif kind == "cmp":
        node.ops[0] = SWAPS[type(node.ops[0])]()
    elif type(node.value) is bool:
        node.value = not node.value
    else:
        node.value += rng.choice((-1, 1))
    return ast.unparse(tree)


def samples(records: list[dict], per_task: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for record in records:
        source = record["prompt"] + record["canonical_solution"]
        seen = {ast.unparse(ast.parse(source))}
        for _ in range(per_task * 4):
            if sum(s["task_id"] == record["task_id"] for s in out) >= per_task:
                break
            mutant = mutate(source, rng)
            if mutant is not None and mutant not in seen:
                seen.add(mutant)
                out.append({"task_id": record["task_id"], "solution": mutant})
        if not any(s["task_id"] == record["task_id"] for s in out):  # EvalPlus wants every task
            out.append({"task_id": record["task_id"], "solution": source})
    return out


def evalplus_verdicts(path: Path, data: Path, python: str) -> list[bool]:
    env = {**os.environ, "HUMANEVAL_OVERRIDE_PATH": str(data)}
    subprocess.run([python, "-m", "evalplus.evaluate", "--dataset", "humaneval", "--samples", str(path),
                    "--i-just-wanna-run"], check=True, env=env, stdout=subprocess.DEVNULL)
    results = json.loads(path.with_name(path.stem + "_eval_results.json").read_text())["eval"]
    order: dict[str, int] = {}
    verdicts = []
    for line in path.read_text().splitlines():
        task = json.loads(line)["task_id"]
        row = results[task][order.get(task, 0)]
        order[task] = order.get(task, 0) + 1
        verdicts.append(row["base_status"] == "pass" and row["plus_status"] == "pass")
    return verdicts


def boundary_verdicts(rows: list[dict], records: dict[str, dict]) -> list[tuple[bool, dict]]:
    from boundary.api.types import GradeItem
    from boundary.workers.graders.code import CodeGrader

    items = [GradeItem(i, "", row["solution"], records[row["task_id"]]) for i, row in enumerate(rows)]
    with CodeGrader() as grader:
        verdicts = {v.key: v for v in grader.grade(items)}
    return [(verdicts[i].correct, verdicts[i].details or {}) for i in range(len(rows))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-task", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--evalplus-python", default=sys.executable)
    args = parser.parse_args()
    data = args.data_dir / "humanevalplus.jsonl"
    records = {r["task_id"]: r for r in map(json.loads, data.read_text().splitlines())}
    rows = samples(list(records.values()), args.per_task, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mutants.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        theirs = evalplus_verdicts(path, data, args.evalplus_python)
    ours = boundary_verdicts(rows, records)
    differ = [i for i, (t, (o, _d)) in enumerate(zip(theirs, ours)) if t != o]
    for i in differ:
        passed, details = ours[i]
        failure = (details.get("first_failure") or {}).get("message")
        print(f"{rows[i]['task_id']}: EvalPlus {'pass' if theirs[i] else 'fail'}, "
              f"boundary {'pass' if passed else 'fail'}"
              f" ({details.get('tests')}; {failure})")
    agree = len(rows) - len(differ)
    print(f"{len(rows)} mutants: EvalPlus passes {sum(theirs)}, boundary {sum(o for o, _ in ours)}; "
          f"they agree on {agree} ({agree / len(rows):.1%}), differ on {len(differ)}")


if __name__ == "__main__":
    main()
