"""`--seed` on the command line, the seed in `--meta`, and `explain`'s random calls."""

from __future__ import annotations

import json
from pathlib import Path

import numpy
from click.testing import CliRunner

import recur
from recur.cli.main import cli

WALK = str(Path(__file__).resolve().parents[2] / "specs" / "random_walk.yaml")


def invoke(*args: str):  # -> click.testing.Result
    return CliRunner().invoke(cli, list(args))


def test_seed_chooses_the_stream_as_the_library_does(tmp_path: Path) -> None:
    out = tmp_path / "walk.npy"
    result = invoke("run", WALK, "--steps", "20", "--seed", "5", "-o", str(out))
    assert result.exit_code == 0, result.output
    library = recur.run(recur.load(WALK), steps=20, seed=5)["x"]
    numpy.testing.assert_array_equal(numpy.load(out), library)
    assert not numpy.array_equal(library, recur.run(recur.load(WALK), steps=20)["x"])


def test_a_bad_seed_is_a_usage_error_in_flag_words() -> None:
    for seed in ("-1", str(2**64)):
        result = invoke("run", WALK, "--seed", seed)
        assert result.exit_code == 2
        assert result.stderr == (f"recur: error: --seed must be an integer from 0 to "
                                 f"2**64 - 1, not {seed}\n")


def test_meta_records_the_seed(tmp_path: Path) -> None:
    meta = tmp_path / "run.json"
    for given, recorded in ((["--seed", "9"], 9), ([], 0)):
        result = invoke("run", WALK, "--steps", "2", "-o", str(tmp_path / "w.npy"),
                        "--meta", str(meta), "--force", *given)
        assert result.exit_code == 0, result.output
        written = json.loads(meta.read_text())
        assert written["seed"] == recorded
        assert written["options"]["seed"] == (recorded if given else None)


def test_explain_lists_the_random_calls_by_number(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("seed: 4\noutputs:\n  x:\n    initial: 0.0\n"
                    "    step: x[t-1] + normal(0, 2) * uniform()\nuntil: uniform() > 0.9\n")
    result = invoke("explain", str(spec), "--steps", "3")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    first = lines.index("random calls, seed 4 (Philox4x64-10, counter (t, element, c, 0), "
                        "key (seed, 0)):")
    assert lines[first + 1:first + 4] == ["  c=0: output x, normal: normal(0, 2)",
                                          "  c=1: output x, uniform: uniform()",
                                          "  c=2: until, uniform: uniform()"]
    again = invoke("explain", str(spec), "--steps", "3", "--seed", "8").stdout
    assert "random calls, seed 8 " in again
    assert "random calls" not in invoke("explain", WALK.replace("random_walk", "fibonacci")).stdout
