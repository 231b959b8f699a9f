"""The cost model of `--engine auto` against recorded engine times (not timed here).

benchmarks/results/cost-model.csv holds what benchmarks/cost.py measured, per workload
and engine, and on what machine; the model's estimate must be within 2x of each figure,
and `auto` must take the faster engine wherever the two differ by more than 2x.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from recur.engine import registry
from recur.engine.c import native

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "benchmarks" / "results" / "cost-model.csv"
sys.path.insert(0, str(ROOT / "benchmarks"))
import cost  # noqa: E402  (benchmarks/cost.py: how each case is prepared)


def recorded() -> tuple[dict[str, tuple[str, ...]], dict[str, dict[str, float]]]:
    """From the table (comment lines start with #): case -> how to prepare it (as
    `cost.CASES` says it), and case -> engine -> seconds."""
    lines = [line for line in TABLE.read_text().splitlines() if not line.startswith("#")]
    cases: dict[str, tuple[str, ...]] = {}
    seconds: dict[str, dict[str, float]] = {}
    for row in csv.DictReader(lines):
        cases[row["case"]] = tuple(row[column] for column in cost.COLUMNS[:6])
        seconds.setdefault(row["case"], {})[row["engine"]] = float(row["measured_s"])
    return cases, seconds


CASES, RECORDED = recorded()


def test_the_table_covers_every_case_on_both_engines() -> None:
    assert {case[0]: case for case in cost.CASES} == CASES
    assert all(sorted(engines) == ["compiled", "interp"] for engines in RECORDED.values())


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_estimate_is_within_2x_of_the_measurement(name: str) -> None:
    _, compiled = cost.prepared(CASES[name])
    estimates = registry.estimates(compiled.program)
    for engine, measured in RECORDED[name].items():
        ratio = estimates[engine].seconds / measured
        assert 0.5 <= ratio <= 2.0, f"{name} {engine}: estimate/measured = {ratio:.2f}"


@pytest.mark.skipif(not native.available(), reason="no C compiler: auto interprets")
@pytest.mark.parametrize("name", sorted(CASES))
def test_auto_takes_the_engine_that_was_clearly_faster(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    measured = RECORDED[name]
    faster, slower = sorted(measured, key=measured.__getitem__)
    if measured[slower] < 2 * measured[faster]:
        pytest.skip("the engines are within 2x of each other")
    monkeypatch.setattr(native, "is_cached", lambda source: True)  # compiled before
    _, compiled = cost.prepared(CASES[name])
    assert registry.choose(compiled.program).engine.name == faster
