"""Benchmark loading: the real data files, user JSONL with field mappings, dataset folders
through the Hugging Face loader, selection, and errors that name the file and line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from boundary.api.benchmarks import arith, load_benchmark, select
from boundary.api.errors import ConfigError, DataError, UnknownName

EXPECTED_SIZES = {
    "gsm8k": 1319, "math500": 500, "aime24": 30, "amc23": 40, "minerva_math": 272, "olympiadbench": 675,
    "humaneval": 164, "humanevalplus": 164, "mbpp": 427, "mbppplus": 378,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_builtin_files_load_whole(name: str, data_dir: Path) -> None:
    bench = load_benchmark(name, data_dir)
    assert len(bench.problems) == EXPECTED_SIZES[name]
    assert len({p.key for p in bench.problems}) == len(bench.problems)
    assert all(p.question.strip() for p in bench.problems)
    if bench.kind == "math":
        assert all(p.answer for p in bench.problems)


def test_gsm8k_fields(data_dir: Path) -> None:
    first = load_benchmark("gsm8k", data_dir).problems[0]
    assert first.key == "gsm8k/test/0"
    assert first.answer == "18"
    assert first.question.startswith("Janet")
    assert "solution" in first.record  # the original row is kept whole


def test_aliases_and_content_hash_is_stable(data_dir: Path) -> None:
    a = load_benchmark("minerva", data_dir)
    b = load_benchmark("minerva_math", data_dir)
    assert a.name == b.name == "minerva_math"
    assert a.content_hash == b.content_hash


def test_arith_is_reproducible_and_correct() -> None:
    one, two = arith.problems(), arith.problems()
    assert one == two and len(one) == arith.SIZE
    for p in one:
        numbers = [int(x) for x in re.findall(r"\d+", p.question)]
        assert int(p.answer) >= 0
        assert len(numbers) >= 2
    # The answers follow the story: spot-check the "buys N more" template by hand.
    p = one[0]
    a, b = (int(x) for x in re.findall(r"\d+", p.question))
    assert int(p.answer) == a + b


def test_builtin_needs_data_dir() -> None:
    with pytest.raises(ConfigError, match="BOUNDARY_DATA_DIR"):
        load_benchmark("gsm8k", None)


def test_unknown_benchmark() -> None:
    with pytest.raises(UnknownName, match="unknown benchmark 'gsm9k'"):
        load_benchmark("gsm9k", None)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_user_jsonl_with_field_mapping(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mine.jsonl",
                       [{"qid": 7, "q": "1+1?", "gold": 2}, {"qid": 8, "q": "2+2?", "gold": 4.0}])
    bench = load_benchmark(str(path), None, fields=["id=qid", "question=q", "answer=gold"])
    assert bench.name == "mine"
    assert [(p.key, p.question, p.answer) for p in bench.problems] == [("7", "1+1?", "2"), ("8", "2+2?", "4")]


def test_user_jsonl_detects_usual_field_names(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "plain.jsonl", [{"question": "What is 3*3?", "answer": "9"}])
    (problem,) = load_benchmark(str(path), None).problems
    assert (problem.key, problem.answer) == ("line-1", "9")


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl",
                       [{"problem": "a", "answer": "1"}, "{not json", {"problem": "b", "answer": "2"}])
    with pytest.raises(DataError, match=re.escape(f"{path}:2: not valid JSON")):
        load_benchmark(str(path), None)


def test_missing_field_names_file_and_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "gap.jsonl", [{"id": 1, "problem": "a", "answer": "1"}, {"id": 2, "problem": "b"}])
    with pytest.raises(DataError, match=re.escape(f"{path}:2: missing field 'answer'")):
        load_benchmark(str(path), None)


def test_no_question_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "odd.jsonl", [{"text": "a", "answer": "1"}])
    with pytest.raises(DataError, match=r":1: no question field.*--field question=FIELD"):
        load_benchmark(str(path), None)


def test_duplicate_ids(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dup.jsonl",
                       [{"id": "x", "problem": "a", "answer": "1"}, {"id": "x", "problem": "b", "answer": "2"}])
    with pytest.raises(DataError, match=r":2: duplicate id 'x' \(first on line 1\)"):
        load_benchmark(str(path), None)


def test_missing_user_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_benchmark(str(tmp_path / "nope.jsonl"), None)


def test_bad_field_option(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ok.jsonl", [{"problem": "a", "answer": "1"}])
    with pytest.raises(DataError, match="expected id=FIELD"):
        load_benchmark(str(path), None, fields=["solution"])


def test_hugging_face_loader_reads_a_dataset_folder(tmp_path: Path) -> None:
    """`hf:` goes through datasets.load_dataset, which takes a hub id or, offline, a folder."""
    folder = tmp_path / "toy_dataset"
    folder.mkdir()
    write_jsonl(folder / "test.jsonl",
                [{"id": f"t{i}", "question": f"{i}+{i}?", "answer": str(2 * i)} for i in range(5)])
    bench = load_benchmark(f"hf:{folder}", None, hf_split="test")
    assert [p.answer for p in bench.problems] == ["0", "2", "4", "6", "8"]
    assert bench.source.startswith("hf:")


def test_hugging_face_unreachable_dataset_is_one_line(tmp_path: Path) -> None:
    """Offline, an unknown dataset id is a one-line DataError (run in a fresh interpreter:
    `datasets` reads HF_HUB_OFFLINE when imported)."""
    script = (
        "from boundary.api.benchmarks import load_benchmark\n"
        "from boundary.api.errors import DataError\n"
        "try:\n"
        "    load_benchmark('hf:nobody/no-such-dataset-xyz', None)\n"
        "except DataError as exc:\n"
        "    print('ERROR', exc)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in out.stdout.splitlines() if line.startswith("ERROR")]
    assert len(lines) == 1, out.stdout + out.stderr
    assert "hf:nobody/no-such-dataset-xyz" in lines[0] and "cannot load dataset" in lines[0]


def test_select_limit_and_ids(data_dir: Path) -> None:
    problems = load_benchmark("aime24", data_dir).problems
    assert [p.key for p in select(problems, 3)] == [p.key for p in problems[:3]]
    keys = [problems[5].key, problems[1].key]
    assert [p.key for p in select(problems, None, keys)] == keys
    assert [p.key for p in select(problems, 1, keys)] == keys[:1]
    with pytest.raises(ConfigError, match="not in the benchmark: nope"):
        select(problems, None, ["nope"])
    with pytest.raises(ConfigError, match="--limit must be >= 1"):
        select(problems, 0)
