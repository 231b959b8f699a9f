"""The engine against a plain-Python reference (`tests/support/reference.py`).

Random specs: each case draws one set of choices (outputs, step expressions over taps,
same-step reads, a sequence with offsets, lanes, `reverse`, `until`, `keep`) and turns
them into both the YAML text that recur runs and the Python functions the reference
runs. Targeted tests then pin the rules of SPEC.md one at a time, each against a
computation done here by hand.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from reference import CheckedInt, Output, Reads, RefFault, laned_outputs, run_reference

import recur

# --- random specs -------------------------------------------------------------------

Node = tuple[Any, ...]
SMALL = [n / 8 for n in range(-16, 17)]
SMALL_INTS = list(range(-3, 4))
# values near the edges of int32/int64, for initials and for int64 arrays (sequence, r)
EDGES = {
    "int32": [2**31 - 1, -(2**31), 46341, -46341, 2**16],
    "int64": [2**63 - 1, -(2**63), 3037000500, -3037000500, 2**62, 2**31, -(2**31) - 1],
}

def render(node: Node) -> str:
    """The expression text of a node, every operation in parentheses."""
    kind = node[0]
    if kind == "c":
        return f"({node[1]!r})" if node[1] < 0 else repr(node[1])
    if kind == "tap":
        return f"{node[1]}[t-{node[2]}]"
    if kind == "now":
        return f"{node[1]}[t]"
    if kind == "seq":
        _, name, k, bare = node
        if k == 0:
            return name if bare else f"{name}[t]"
        return f"{name}[t+{k}]" if k > 0 else f"{name}[t-{-k}]"
    if kind in ("r", "t"):
        return kind
    if kind == "neg":
        return f"(-{render(node[1])})"
    return f"({render(node[1])} {kind} {render(node[2])})"


def evaluate(node: Node, reads: Reads) -> Any:
    """The same expression in Python arithmetic, for one lane."""
    kind = node[0]
    if kind == "c":
        return node[1]
    if kind == "tap":
        return reads.tap(node[1], node[2])
    if kind == "now":
        return reads.now(node[1])
    if kind == "seq":
        return reads.seq(node[1], node[2])
    if kind == "r":
        return reads.param("r")
    if kind == "t":
        return reads.t
    if kind == "neg":
        return -evaluate(node[1], reads)
    a, b = evaluate(node[1], reads), evaluate(node[2], reads)
    return a + b if kind == "+" else a - b if kind == "-" else a * b


def walk(node: Node) -> list[Node]:
    if node[0] in ("+", "-", "*"):
        return [node, *walk(node[1]), *walk(node[2])]
    if node[0] == "neg":
        return [node, *walk(node[1])]
    return [node]


@dataclass
class Case:
    yaml: str
    kwargs: dict[str, Any]
    outputs: list[Output]  # evaluation order
    declared: list[str]
    keeps: dict[str, str]
    reference: dict[str, Any] = field(default_factory=dict)


def _expr(draw: Any, depth: int, leaves: list[Callable[[], Node]]) -> Node:
    if depth > 0 and draw(st.integers(0, 2)) > 0:
        op = draw(st.sampled_from(["+", "-", "*", "*", "neg"]))
        if op == "neg":
            return ("neg", _expr(draw, depth - 1, leaves))
        return (op, _expr(draw, depth - 1, leaves), _expr(draw, depth - 1, leaves))
    return draw(st.sampled_from(leaves))()


@st.composite
def cases(draw: Any, ints: bool = False) -> Case:
    """One random spec and its reference. `ints`: int32/int64 outputs, else float64.

    In integer mode, arrays that NumPy holds as int64 (the sequence, lanes of `r`) are
    `CheckedInt(v, 64)` in the reference, so promotion follows NumPy 2 there too.
    """
    n_out = draw(st.integers(1, 3))
    names = draw(st.permutations(["x", "y", "z"]))[:n_out]  # evaluation order
    dtypes = {name: draw(st.sampled_from(["int32", "int64"])) if ints else "float64"
              for name in names}
    numbers = SMALL_INTS if ints else SMALL
    number = st.sampled_from(numbers)

    def value_of(dtype: str) -> Any:
        """A state or an array element: in integer mode now and then near an edge."""
        if ints and draw(st.integers(0, 9)) == 0:
            return draw(st.sampled_from(EDGES[dtype]))
        return draw(number)

    has_seq = draw(st.booleans())
    lanes = draw(st.none() | st.integers(1, 4))
    has_r = lanes is not None or draw(st.booleans())

    trees: list[Node] = []
    for i in range(n_out):
        leaves: list[Callable[[], Node]] = [
            lambda: ("c", draw(number)),
            lambda: ("tap", draw(st.sampled_from(names)), draw(st.integers(1, 4))),
            lambda: ("t",),
        ]
        if i > 0:
            earlier = names[:i]
            leaves.append(lambda earlier=earlier: ("now", draw(st.sampled_from(earlier))))
        if has_seq:
            leaves.append(lambda: ("seq", "s", draw(st.integers(-2, 2)), draw(st.booleans())))
        if has_r:
            leaves.append(lambda: ("r",))
        trees.append(_expr(draw, draw(st.integers(0, 3)), leaves))

    # until: none, on t, on a value now, or on a value some steps back
    until_kind = draw(st.sampled_from(["none", "none", "t", "now", "tap"]))
    until_name = draw(st.sampled_from(names))
    until_k = draw(st.integers(1, 2))
    until_c = draw(st.sampled_from([*numbers, -(10**9)]))

    depth = dict.fromkeys(names, 0)
    for tree in trees:
        for node in walk(tree):
            if node[0] == "tap":
                depth[node[1]] = max(depth[node[1]], node[2])
    if until_kind == "tap":
        depth[until_name] = max(depth[until_name], until_k)

    offsets = {node[2] for tree in trees for node in walk(tree) if node[0] == "seq"}
    seq: list[Any] = []
    if has_seq:
        span = max(offsets | {0}) - min(offsets | {0})
        # an empty list of ints is a float64 array, which int outputs refuse
        allowed = draw(st.integers(1 if ints and span == 0 else 0, 20))
        seq = [value_of("int64") for _ in range(span + allowed)]
        steps_mode = draw(st.sampled_from(["auto", "yaml", "kwarg"]))
        steps = allowed if steps_mode == "auto" else draw(st.integers(0, allowed))
    else:
        steps_mode = draw(st.sampled_from(["yaml", "kwarg"]))
        steps = draw(st.integers(0, 20))
    reverse = draw(st.booleans())
    last_flag = draw(st.integers(0, 4)) == 0

    lo, hi = draw(number), draw(number)
    r_text, r_value = "", None
    if lanes is not None and ints:
        lane_values = [value_of("int64") for _ in range(lanes)]
        r_text, r_value = json.dumps(lane_values), [CheckedInt(v, 64) for v in lane_values]
    elif lanes is not None:
        r_text = f"linspace({lo!r}, {hi!r}, {lanes})"
        r_value = [float(v) for v in numpy.linspace(lo, hi, lanes)]
    elif has_r:
        r_text, r_value = repr(lo), lo

    outputs, initials = [], {}
    for name, tree in zip(names, trees, strict=True):
        rows = None
        if depth[name]:
            per_lane = lanes is not None and draw(st.booleans())
            rows = [
                [value_of(dtypes[name]) for _ in range(lanes)] if per_lane
                else value_of(dtypes[name])
                for _ in range(depth[name])
            ]
        reads = {node[1] for node in walk(tree) if node[0] in ("tap", "now")}
        if any(node[0] == "r" for node in walk(tree)):
            reads.add("r")
        outputs.append(Output(
            name, lambda rd, tree=tree: evaluate(tree, rd), rows, frozenset(reads),
            dtypes[name],
        ))
        initials[name] = rows

    # keep: an output never run with no initial cannot give a final state
    keeps = {}
    for name in names:
        keep = draw(st.sampled_from(["all", "all", "last", "none"]))
        if keep == "last" and steps == 0 and not depth[name]:
            keep = "all"
        keeps[name] = keep
    if last_flag and steps == 0 and not all(depth[n] or keeps[n] == "none" for n in names):
        last_flag = False

    laned = laned_outputs(outputs, frozenset({"r"}) if lanes is not None else frozenset(),
                          lanes)
    until_text: str | None = None
    until_fn: Callable[[list[Reads]], bool] | None = None
    if until_kind == "t":
        m = draw(st.integers(0, 20))
        until_text = f"t >= {m}"

        def until_fn(rds: list[Reads], m: int = m) -> bool:
            return rds[0].t >= m

    elif until_kind in ("now", "tap"):
        read = f"{until_name}[t]" if until_kind == "now" else f"{until_name}[t-{until_k}]"
        k = 0 if until_kind == "now" else until_k

        def fetch(rd: Reads, name: str = until_name, k: int = k) -> Any:
            return rd.now(name) if k == 0 else rd.tap(name, k)

        def until_any(rds: list[Reads], c: float = until_c, f: Any = fetch) -> bool:
            return any(f(rd) > c for rd in rds)

        def until_one(rds: list[Reads], c: float = until_c, f: Any = fetch) -> bool:
            return bool(f(rds[0]) > c)

        c_text = f"({until_c!r})" if until_c < 0 else repr(until_c)
        if laned[until_name]:
            until_text, until_fn = f"any({read} > {c_text})", until_any
        else:
            until_text, until_fn = f"{read} > {c_text}", until_one

    declared = draw(st.permutations(names))
    lines = ["description: random case"]
    if has_r:
        lines += ["params:", f"  r: {r_text}"]
    if has_seq:
        lines += ["sequences:", f"  s: {json.dumps(seq)}"]
    if steps_mode == "yaml":
        lines.append(f"steps: {steps}")
    if reverse:
        lines.append("reverse: true")
    if until_text is not None:
        lines.append(f"until: {until_text}")
    lines.append("outputs:")
    by_name = dict(zip(names, trees, strict=True))
    for name in declared:
        lines.append(f"  {name}:")
        if dtypes[name] != "float64" or draw(st.booleans()):
            lines.append(f"    dtype: {dtypes[name]}")
        if initials[name] is not None:
            rows = initials[name]
            initial = rows[0] if len(rows) == 1 else rows
            lines.append(f"    initial: {json.dumps(initial)}")
            if draw(st.booleans()):
                taps = sorted({-node[2] for tree in trees for node in walk(tree)
                               if node[0] == "tap" and node[1] == name}
                              | ({-until_k} if until_kind == "tap" and until_name == name
                                 else set()))
                lines.append(f"    taps: {json.dumps(draw(st.permutations(taps)))}")
        lines.append(f"    step: {render(by_name[name])}")
        if keeps[name] != "all" or draw(st.booleans()):
            lines.append(f"    keep: {keeps[name]}")
    yaml = "\n".join(lines) + "\n"

    kwargs: dict[str, Any] = {"last": last_flag}
    if steps_mode == "kwarg":
        kwargs["steps"] = steps
    sequence = [CheckedInt(v, 64) for v in seq] if ints else seq
    reference = {
        "steps": steps,
        "params": {"r": r_value} if has_r else {},
        "lanes": lanes,
        "sequences": {"s": (sequence, offsets)} if has_seq else {},
        "reverse": reverse,
        "until": until_fn,
    }
    return Case(yaml, kwargs, outputs, declared, keeps, reference)


def _check_case(case: Case, **run_options: Any) -> None:
    """`case` run by recur (with `run_options` added, say an engine) against the reference."""
    note(case.yaml)
    note(repr(case.kwargs))
    try:
        expected = run_reference(case.outputs, **case.reference)
    except RefFault as fault:
        with pytest.raises(recur.RecurError) as info:
            recur.run(recur.load(case.yaml), **case.kwargs, **run_options)
        message = info.value.message
        assert info.value.exit_code == 1, message
        assert any(f"'{name}'" in message for name in fault.names), message
        assert f"t={fault.t}" in message
        return
    result = recur.run(recur.load(case.yaml), **case.kwargs, **run_options)

    assert result.steps_run == expected.steps_run
    assert result.stopped_by == expected.stopped_by
    kept = [name for name in case.declared if case.keeps[name] != "none"]
    assert list(result) == kept
    dtypes = {out.name: out.dtype for out in case.outputs}
    for name in kept:
        whole = case.keeps[name] == "all" and not case.kwargs["last"]
        want = expected.trajectories[name] if whole else expected.last[name]
        got = result[name]
        assert got.dtype == numpy.dtype(dtypes[name]), name
        assert got.shape == want.shape, name
        # only + - * in the same order: bit for bit
        assert_array_equal(got, want, err_msg=name)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_random_float_specs_agree_with_the_reference(case: Case) -> None:
    _check_case(case)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(ints=True))
def test_random_integer_specs_agree_with_the_reference(case: Case) -> None:
    """Exact values, or an overflow reported for the same output at the same step."""
    _check_case(case)


# --- helpers for targeted tests --------------------------------------------------------


def run_yaml(text: str, **kwargs: Any) -> Any:
    return recur.run(recur.load(text), **kwargs)


def fails(text: str, **kwargs: Any) -> recur.RecurError:
    with pytest.raises(recur.RecurError) as info:
        run_yaml(text, **kwargs)
    return info.value


def full_text(err: recur.RecurError) -> str:
    return "\n".join([err.message, *err.notes])


# --- steps and shapes ---------------------------------------------------------------


def test_zero_steps_scalar_state() -> None:
    result = run_yaml("outputs:\n  x:\n    initial: 1.0\n    step: x[t-1] * 2\n", steps=0)
    assert result["x"].shape == (0,)
    assert result["x"].dtype == numpy.float64
    assert result.steps_run == 0


def test_zero_steps_with_lanes() -> None:
    text = """\
params:
  r: linspace(1, 2, 3)
steps: 0
outputs:
  x:
    initial: 1.0
    step: x[t-1] * r
"""
    assert run_yaml(text)["x"].shape == (0, 3)


def test_zero_steps_from_a_sequence_its_taps_use_up() -> None:
    text = """\
sequences:
  s: [1.0, 2.0, 3.0]
outputs:
  x:
    step: s[t-1] + s[t+1]
"""
    # offsets -1..1 use 2 of the 3 elements: one step; then none with 2 elements
    assert run_yaml(text)["x"].tolist() == [1.0 + 3.0]
    text2 = text.replace("[1.0, 2.0, 3.0]", "[1.0, 2.0]")
    assert run_yaml(text2)["x"].shape == (0,)


def test_deep_taps_on_a_matrix_state() -> None:
    rng = numpy.random.default_rng(7)
    initial = rng.integers(-8, 8, size=(5, 6, 3)) / 4.0
    text = f"""\
steps: 9
outputs:
  x:
    taps: [-5, -2, -1]
    initial: {json.dumps(initial.tolist())}
    step: x[t-1] * 0.5 + x[t-2] - 0.25 * x[t-5]
"""
    got = run_yaml(text)["x"]
    assert got.shape == (9, 6, 3)
    for i in range(6):
        for j in range(3):
            out = Output("x", lambda r: r.tap("x", 1) * 0.5 + r.tap("x", 2)
                         - 0.25 * r.tap("x", 5), [float(v) for v in initial[:, i, j]])
            want = run_reference([out], steps=9).trajectories["x"]
            assert_array_equal(got[:, i, j], want)


def test_deep_taps_need_an_initial_with_that_many_rows() -> None:
    text = """\
steps: 3
outputs:
  x:
    initial: [[1.0, 2.0], [3.0, 4.0]]
    step: x[t-1] + x[t-3]
"""
    err = fails(text)
    assert err.exit_code == 2
    assert "3" in err.message


def test_gapped_taps_read_the_right_rows() -> None:
    text = """\
steps: 6
outputs:
  x:
    initial: [100.0, 20.0, 3.0]
    step: x[t-3] + 0.5 * x[t-1]
"""
    out = Output("x", lambda r: r.tap("x", 3) + 0.5 * r.tap("x", 1), [100.0, 20.0, 3.0])
    assert_array_equal(run_yaml(text)["x"], run_reference([out], steps=6).trajectories["x"])


# --- sequences, reverse ------------------------------------------------------------------


def test_reverse_with_fewer_steps_uses_the_last_elements() -> None:
    text = """\
sequences:
  s: [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
reverse: true
outputs:
  x:
    step: s
  y:
    step: s[t+1] * 10 + s[t-1]
"""
    result = run_yaml(text, steps=3)
    # walking order 6 5 4 3 2 1 with offsets -1..1: step t reads element t+1 as s[t]
    assert result["x"].tolist() == [5.0, 4.0, 3.0]
    assert result["y"].tolist() == [4.0 * 10 + 6.0, 3.0 * 10 + 5.0, 2.0 * 10 + 4.0]
    # without the look-around, s[t] is element t of the reversed sequence
    only = "\n".join(text.splitlines()[:6]) + "\n"
    assert run_yaml(only, steps=3)["x"].tolist() == [6.0, 5.0, 4.0]


def test_reverse_with_all_steps_matches_the_reference() -> None:
    seq = [0.5, -1.0, 2.0, 3.5, -0.25, 1.5, 4.0]
    text = f"""\
sequences:
  s: {json.dumps(seq)}
reverse: true
outputs:
  acc:
    initial: 0.0
    step: acc[t-1] * 0.5 + s[t-2] - s[t+1]
"""
    out = Output("acc", lambda r: r.tap("acc", 1) * 0.5 + r.seq("s", -2) - r.seq("s", 1), [0.0])
    want = run_reference([out], sequences={"s": (seq, {-2, 1})}, reverse=True)
    got = run_yaml(text)
    assert got["acc"].shape == (len(seq) - 3,)
    assert_array_equal(got["acc"], want.trajectories["acc"])


def test_too_many_steps_for_a_sequence_gives_both_numbers() -> None:
    text = "sequences:\n  s: [1.0, 2.0, 3.0, 4.0]\noutputs:\n  x:\n    step: s[t+1]\n"
    err = fails(text, steps=9)
    assert err.exit_code == 2
    assert "9" in err.message and "3" in err.message


# --- until --------------------------------------------------------------------------


UNTIL = """\
steps: 10
until: {until}
outputs:
  x:
    initial: 1.0
    step: x[t-1] * 2
"""


def test_until_true_on_the_first_step_keeps_that_step() -> None:
    result = run_yaml(UNTIL.format(until="x[t] > 0"))
    assert result["x"].tolist() == [2.0]
    assert (result.steps_run, result.stopped_by) == (1, "until")


def test_until_stops_after_the_first_true_step() -> None:
    result = run_yaml(UNTIL.format(until="x[t] >= 16"))
    assert result["x"].tolist() == [2.0, 4.0, 8.0, 16.0]
    assert (result.steps_run, result.stopped_by) == (4, "until")


def test_until_never_true_runs_every_step() -> None:
    result = run_yaml(UNTIL.format(until="x[t] < 0"))
    assert result["x"].tolist() == [2.0**k for k in range(1, 11)]
    assert (result.steps_run, result.stopped_by) == (10, "steps")


def test_until_with_keep_last_gives_the_stopping_state() -> None:
    result = run_yaml(UNTIL.format(until="x[t] >= 16"), last=True)
    assert result["x"].shape == ()
    assert float(result["x"]) == 16.0


def test_until_over_lanes_reduced_with_any() -> None:
    text = """\
params:
  r: linspace(1, 3, 3)
steps: 20
until: any(x[t] > 50)
outputs:
  x:
    initial: 1.0
    step: x[t-1] * r
"""
    result = run_yaml(text)
    out = Output("x", lambda r: r.tap("x", 1) * r.param("r"), [1.0], frozenset({"r"}))
    want = run_reference([out], steps=20, params={"r": [1.0, 2.0, 3.0]}, lanes=3,
                         until=lambda rds: any(rd.now("x") > 50 for rd in rds))
    assert result.steps_run == want.steps_run == 4
    assert_array_equal(result["x"], want.trajectories["x"])


# --- keep, --last -------------------------------------------------------------------


KEEPS = """\
steps: 5
outputs:
  a:
    initial: 1.0
    step: a[t-1] + 1
    keep: {a}
  b:
    step: a[t] * 10
    keep: {b}
  c:
    initial: [0.0, 0.0]
    step: c[t-2] + b[t]
"""


def test_keep_last_and_none() -> None:
    result = run_yaml(KEEPS.format(a="none", b="last"))
    assert list(result) == ["b", "c"]
    assert result["b"].shape == ()
    assert float(result["b"]) == 60.0
    # c[t] = c[t-2] + 10 * (t + 2)
    assert result["c"].tolist() == [20.0, 30.0, 60.0, 80.0, 120.0]


def test_keep_all_is_the_default() -> None:
    result = run_yaml(KEEPS.format(a="all", b="all"))
    assert result["a"].tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert result["b"].tolist() == [20.0, 30.0, 40.0, 50.0, 60.0]


def test_last_flag_keeps_only_final_states() -> None:
    result = run_yaml(KEEPS.format(a="all", b="none"), last=True)
    assert list(result) == ["a", "c"]
    assert result["a"].shape == () and float(result["a"]) == 6.0
    assert result["c"].shape == () and float(result["c"]) == 120.0


def test_keep_last_matches_keep_all_for_deep_taps() -> None:
    text = """\
steps: 17
outputs:
  x:
    initial: [1.0, -2.0, 0.5, 3.0]
    step: x[t-4] - 0.5 * x[t-2] + x[t-1] * 0.25
    keep: {keep}
"""
    whole = run_yaml(text.format(keep="all"))["x"]
    last = run_yaml(text.format(keep="last"))["x"]
    assert last.shape == ()
    assert last == whole[-1]


# --- lanes --------------------------------------------------------------------------


def test_lanes_broadcast_a_scalar_initial() -> None:
    text = """\
params:
  r: linspace(2.5, 4, 4)
steps: 6
outputs:
  x:
    initial: 0.5
    step: r * x[t-1] * (1 - x[t-1])
"""
    got = run_yaml(text)["x"]
    assert got.shape == (6, 4)
    for lane, r in enumerate(numpy.linspace(2.5, 4, 4).tolist()):
        x, want = 0.5, []
        for _ in range(6):
            x = r * x * (1 - x)
            want.append(x)
        assert_allclose(got[:, lane], want, rtol=1e-12)


@pytest.mark.parametrize("lanes", [2, 3])
def test_deep_initial_broadcasts_over_lanes(lanes: int) -> None:
    text = f"""\
params:
  r: linspace(1, 2, {lanes})
steps: 3
outputs:
  x:
    initial: [0.0, 1.0]
    step: x[t-1] + x[t-2] * r
"""
    r = numpy.linspace(1, 2, lanes).tolist()
    out = Output("x", lambda rd: rd.tap("x", 1) + rd.tap("x", 2) * rd.param("r"), [0.0, 1.0],
                 frozenset({"r"}))
    want = run_reference([out], steps=3, params={"r": r}, lanes=lanes).trajectories["x"]
    assert_array_equal(run_yaml(text)["x"], want)


def test_lanes_spread_through_taps_of_other_outputs() -> None:
    text = """\
params:
  r: linspace(1, 2, 2)
steps: 4
outputs:
  y:
    initial: 0.0
    step: y[t-1] + x[t-1]
  x:
    initial: 1.0
    step: x[t-1] * r
"""
    result = run_yaml(text)
    assert result["y"].shape == (4, 2)
    assert result["y"].tolist() == [[1.0, 1.0], [2.0, 3.0], [3.0, 7.0], [4.0, 15.0]]


# --- integer overflow ---------------------------------------------------------------

MAX = {"int64": 2**63 - 1, "int32": 2**31 - 1}
MIN = {"int64": -(2**63), "int32": -(2**31)}

# op -> (spec outputs as YAML given the dtype, the same in reference outputs)
OVERFLOWS: dict[str, Callable[[str], tuple[str, list[Output]]]] = {}


def _overflow_case(op: str) -> Callable[[Callable[[str], tuple[str, list[Output]]]], Any]:
    def register(make: Callable[[str], tuple[str, list[Output]]]) -> Any:
        OVERFLOWS[op] = make
        return make
    return register


def _int_out(name: str, step: Callable[[Reads], Any], initial: Any, dtype: str) -> Output:
    return Output(name, step, None if initial is None else [initial], dtype=dtype)


@_overflow_case("+")
def _add(dtype: str) -> tuple[str, list[Output]]:
    c = MAX[dtype] // 7
    return (f"  x:\n    initial: 5\n    step: x[t-1] + {c}\n",
            [_int_out("x", lambda r: r.tap("x", 1) + c, 5, dtype)])


@_overflow_case("-")
def _sub(dtype: str) -> tuple[str, list[Output]]:
    c = MAX[dtype] // 5
    return (f"  x:\n    initial: -3\n    step: x[t-1] - {c}\n",
            [_int_out("x", lambda r: r.tap("x", 1) - c, -3, dtype)])


@_overflow_case("*")
def _mul(dtype: str) -> tuple[str, list[Output]]:
    return ("  x:\n    initial: -1\n    step: x[t-1] * 7\n",
            [_int_out("x", lambda r: r.tap("x", 1) * 7, -1, dtype)])


@_overflow_case("**")
def _pow(dtype: str) -> tuple[str, list[Output]]:
    return ("  x:\n    initial: 3\n    step: x[t-1] ** 2\n",
            [_int_out("x", lambda r: r.tap("x", 1) ** 2, 3, dtype)])


def _from_min(dtype: str, step_text: str, step: Callable[[Any], Any]) -> tuple[
    str, list[Output]
]:
    """x walks down to the dtype's minimum; y = step(x[t]) faults when x reaches it."""
    start = MIN[dtype] + 3
    text = (f"  x:\n    initial: {start}\n    step: x[t-1] - 1\n"
            f"  y:\n    step: {step_text}\n")
    return text, [_int_out("x", lambda r: r.tap("x", 1) - 1, start, dtype),
                  _int_out("y", lambda r: step(r.now("x")), None, dtype)]


@_overflow_case("//")
def _floordiv(dtype: str) -> tuple[str, list[Output]]:
    return _from_min(dtype, "x[t] // -1", lambda x: x // -1)


@_overflow_case("neg")
def _neg(dtype: str) -> tuple[str, list[Output]]:
    return _from_min(dtype, "-x[t]", lambda x: -x)


@_overflow_case("abs")
def _abs(dtype: str) -> tuple[str, list[Output]]:
    return _from_min(dtype, "abs(x[t])", abs)


@_overflow_case("python-int **")
def _python_pow(dtype: str) -> tuple[str, list[Output]]:
    base = 20 if dtype == "int64" else 10
    return (f"  x:\n    step: 3 ** (t + {base})\n",
            [_int_out("x", lambda r: 3 ** (r.t + base), None, dtype)])


def _first_fault(outputs: list[Output], steps: int) -> RefFault:
    with pytest.raises(RefFault) as info:
        run_reference(outputs, steps=steps)
    return info.value


@pytest.mark.parametrize("dtype", ["int64", "int32"])
@pytest.mark.parametrize("op", list(OVERFLOWS))
def test_integer_overflow_is_reported_at_its_step(op: str, dtype: str) -> None:
    body, outputs = OVERFLOWS[op](dtype)
    fault = _first_fault(outputs, 60)
    assert fault.t is not None
    text = f"steps: 60\ndtype: {dtype}\noutputs:\n{body}"
    err = fails(text)
    assert err.exit_code == 1, err.message
    assert f"'{fault.name}'" in err.message
    assert f"t={fault.t}" in err.message
    assert "overflow" in err.message
    # one step fewer runs clean, and matches the reference
    result = run_yaml(text, steps=fault.t)
    good = run_reference(outputs, steps=fault.t)
    for out in outputs:
        assert result[out.name].dtype == numpy.dtype(dtype)
        assert result[out.name].tolist() == good.trajectories[out.name].tolist()


@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_overflow_in_an_intermediate_value_is_reported(dtype: str) -> None:
    # (x * big) // big would fit again, but the product overflows first
    big = MAX[dtype] // 3
    text = f"""\
steps: 10
dtype: {dtype}
outputs:
  x:
    initial: 1
    step: (x[t-1] + 1) * {big} // {big}
"""
    out = _int_out("x", lambda r: (r.tap("x", 1) + 1) * big // big, 1, dtype)
    fault = _first_fault([out], 10)
    err = fails(text)
    assert err.exit_code == 1
    assert "'x'" in err.message and f"t={fault.t}" in err.message


@pytest.mark.parametrize(("values", "step"), [
    ([2**62, 2**62], "sum(v)"),
    ([2**32, 2**32], "prod(v)"),
    ([2**62, 2**62], "dot(v, v * 0 + 1)"),
    ([2**62, 2**62], "v @ (v * 0 + 1)"),
])
def test_integer_reductions_report_overflow(values: list[int], step: str) -> None:
    text = (f"steps: 2\nparams:\n  v: {values}\n"
            f"outputs:\n  x:\n    dtype: int64\n    step: {step}\n")
    err = fails(text)
    assert err.exit_code == 1
    assert "'x'" in err.message and "t=0" in err.message


@pytest.mark.parametrize("step", ["sum(v)", "dot(v, w)", "v @ w"])
def test_integer_reduction_overflow_hidden_by_rounding(step: str) -> None:
    # exact sum 2**63 + 509; float64 rounds every partial sum back to 2**63 - 1024
    values = [2**63 - 1024, 511, 511, 511]
    assert sum(values) > MAX["int64"]
    text = f"""\
steps: 1
params:
  v: {values}
  w: [1, 1, 1, 1]
outputs:
  x:
    dtype: int64
    step: {step}
"""
    err = fails(text)
    assert err.exit_code == 1
    assert "'x'" in err.message and "t=0" in err.message


def test_integer_sum_that_fits_is_not_an_overflow() -> None:
    text = ("steps: 1\nparams:\n  v: [9223372036854775807, -1]\n"
            "outputs:\n  x:\n    dtype: int64\n    step: sum(v)\n")
    assert run_yaml(text)["x"].tolist() == [2**63 - 2]


@pytest.mark.parametrize("step", ["abs(v)", "abs(v - t)"])
def test_abs_of_a_number_at_the_int64_minimum_overflows(step: str) -> None:
    text = f"""\
steps: 2
params:
  v: -9223372036854775808
outputs:
  x:
    dtype: int64
    step: {step}
"""
    err = fails(text)
    assert err.exit_code == 1
    assert "'x'" in err.message and "t=0" in err.message


@pytest.mark.parametrize(("values", "t"), [([-(2**63)], 0), ([5, -3, -(2**63), 1], 2)])
def test_abs_of_an_array_at_the_int64_minimum_overflows(values: list[int], t: int) -> None:
    text = f"sequences:\n  v: {values}\noutputs:\n  x:\n    dtype: int64\n    step: abs(v)\n"
    err = fails(text)
    assert err.exit_code == 1
    assert "'x'" in err.message and f"t={t}" in err.message


def test_python_int_too_big_for_an_int32_state_later_on() -> None:
    text = """\
steps: 5
outputs:
  x:
    dtype: int32
    initial: 0
    step: x[t-1] * 0 + t * 1000000000
"""
    # t * 10**9 leaves int32 at t = 3
    assert [t * 10**9 <= MAX["int32"] for t in range(4)] == [True, True, True, False]
    err = fails(text)
    assert err.exit_code == 1
    assert "'x'" in err.message and "t=3" in err.message


def test_python_int_too_big_for_an_int32_state_at_step_0() -> None:
    text = """\
steps: 5
outputs:
  x:
    dtype: int32
    initial: 0
    step: x[t-1] + (t + 3000000000)
"""
    # (a literal outside int32 is refused before the run: test_exact)
    err = fails(text)
    assert err.exit_code == 1
    assert "'x'" in err.message and "t=0" in err.message


@pytest.mark.parametrize("op", ["//", "%"])
@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_integer_division_by_zero_fails(op: str, dtype: str) -> None:
    text = f"""\
steps: 10
dtype: {dtype}
outputs:
  d:
    initial: 3
    step: d[t-1] - 1
  q:
    step: 10 {op} d[t]
"""
    outputs = [
        _int_out("d", lambda r: r.tap("d", 1) - 1, 3, dtype),
        _int_out("q", (lambda r: 10 // r.now("d")) if op == "//" else
                 (lambda r: 10 % r.now("d")), None, dtype),
    ]
    fault = _first_fault(outputs, 10)
    assert (fault.name, fault.t) == ("q", 2)
    err = fails(text)
    assert err.exit_code == 1
    assert "'q'" in err.message and "t=2" in err.message
    assert "zero" in err.message


def test_float_division_by_zero_is_not_an_error() -> None:
    result = run_yaml("steps: 1\noutputs:\n  x:\n    step: 1.0 / (t * 1.0)\n")
    assert result["x"].tolist() == [math.inf]


# --- select forgives faults in lanes it does not pick ------------------------------------


def test_select_forgives_division_by_zero_in_lanes_not_picked() -> None:
    text = """\
params:
  d: [2, 0, -3]
steps: 2
outputs:
  q:
    dtype: int64
    step: 10 // d if d != 0 else -1
"""
    result = run_yaml(text)
    assert result["q"].dtype == numpy.int64
    assert result["q"].tolist() == [[5, -1, -4]] * 2


@pytest.mark.parametrize("d", [0, 5])
def test_select_forgives_division_by_zero_for_a_scalar_param(d: int) -> None:
    text = f"""\
params:
  d: {d}
steps: 1
outputs:
  q:
    dtype: int64
    step: 10 // d if d != 0 else -1
"""
    assert run_yaml(text)["q"].tolist() == [10 // d if d != 0 else -1]


def test_select_forgives_division_by_zero_for_a_sequence() -> None:
    text = """\
sequences:
  d: [2, 0, -3, 0]
outputs:
  q:
    dtype: int64
    step: 10 // d if d != 0 else -1
"""
    assert run_yaml(text)["q"].tolist() == [5, -1, -4, -1]


def test_select_forgives_overflow_in_the_branch_not_picked() -> None:
    text = """\
steps: 6
outputs:
  x:
    dtype: int64
    initial: 1
    step: x[t-1] * 100000 if x[t-1] < 10**15 else x[t-1] + 1
"""
    out = _int_out("x", lambda r: r.tap("x", 1) * 100000 if r.tap("x", 1) < 10**15
                   else r.tap("x", 1) + 1, 1, "int64")
    want = run_reference([out], steps=6).trajectories["x"]
    assert want.tolist()[-1] == 10**15 + 3
    assert run_yaml(text)["x"].tolist() == want.tolist()


def test_select_reports_overflow_in_the_picked_lane() -> None:
    text = """\
params:
  d: [0, 1]
steps: 20
outputs:
  x:
    dtype: int64
    initial: 1
    step: x[t-1] * 1000 if d != 0 else x[t-1] - 1
"""
    out = Output("x", lambda r: r.tap("x", 1) * 1000 if r.param("d") != 0
                 else r.tap("x", 1) - 1, [1], frozenset({"d"}), "int64")
    with pytest.raises(RefFault) as info:
        run_reference([out], steps=20, params={"d": [0, 1]}, lanes=2)
    t = info.value.t
    assert t == 6
    err = fails(text)
    assert err.exit_code == 1
    assert "'x'" in err.message and f"t={t}" in err.message
    good = run_yaml(text, steps=t)["x"]
    assert good.tolist() == [[-k, 1000 ** (k + 1)] for k in range(t)]


# --- NumPy 2 promotion ------------------------------------------------------------------


def test_float32_state_times_a_literal_stays_float32() -> None:
    text = """\
steps: 8
outputs:
  x:
    dtype: float32
    initial: 0.7
    step: x[t-1] * 0.5 + 0.1
"""
    got = run_yaml(text)["x"]
    assert got.dtype == numpy.float32
    x, want = numpy.float32(0.7), []
    for _ in range(8):
        x = x * numpy.float32(0.5) + numpy.float32(0.1)
        want.append(x)
    assert got.tolist() == [float(v) for v in want]
    # and not what float64 arithmetic rounded to float32 gives
    y, wide = 0.7, []
    for _ in range(8):
        y = y * 0.5 + 0.1
        wide.append(float(numpy.float32(y)))
    assert got.tolist() != wide


def test_float32_default_dtype_with_sequence_of_literals() -> None:
    text = """\
dtype: float32
steps: 4
outputs:
  x:
    initial: 1.0
    step: x[t-1] * 0.5
"""
    got = run_yaml(text)["x"]
    assert got.dtype == numpy.float32
    assert got.tolist() == [0.5, 0.25, 0.125, 0.0625]


def test_int32_state_stays_int32() -> None:
    text = """\
steps: 6
outputs:
  x:
    dtype: int32
    initial: 2
    step: x[t-1] * 3 + 1
"""
    got = run_yaml(text)["x"]
    assert got.dtype == numpy.int32
    out = _int_out("x", lambda r: r.tap("x", 1) * 3 + 1, 2, "int32")
    assert got.tolist() == run_reference([out], steps=6).trajectories["x"].tolist()


def test_float_step_into_an_int_output_names_both_dtypes() -> None:
    text = """\
steps: 3
outputs:
  x:
    dtype: int64
    initial: 1
    step: x[t-1] * 0.5
"""
    err = fails(text)
    assert err.exit_code == 2
    assert "float64" in err.message and "int64" in err.message


def test_int_step_into_a_float_output_is_fine() -> None:
    got = run_yaml("steps: 3\noutputs:\n  x:\n    step: t * 2\n")["x"]
    assert got.dtype == numpy.float64
    assert got.tolist() == [0.0, 2.0, 4.0]


# --- check, shapes, memory -------------------------------------------------------------


def test_check_stops_at_the_first_non_finite_value() -> None:
    text = """\
steps: 10
outputs:
  x:
    initial: 1.0
    step: x[t-1] * 1e200
"""
    x, first = 1.0, None
    for t in range(10):
        x = x * 1e200
        if not math.isfinite(x):
            first = t
            break
    assert first == 1
    err = fails(text, check=True)
    assert err.exit_code == 1
    assert "'x'" in err.message and f"t={first}" in err.message
    # without check, inf is a value
    assert run_yaml(text)["x"].tolist()[:3] == [1e200, math.inf, math.inf]


def test_check_finds_nan_in_one_lane() -> None:
    text = """\
params:
  r: linspace(-1, 1, 3)
steps: 5
outputs:
  x:
    step: sqrt(r - t * 0.25)
"""
    # lane 1 (r = 0) goes negative at t = 1, lane 2 (r = 1) at t = 5
    err = fails(text, check=True)
    assert err.exit_code == 1
    assert "t=0" in err.message  # lane 0 (r = -1) is nan from the start
    text2 = text.replace("linspace(-1, 1, 3)", "linspace(0, 1, 2)")
    err = fails(text2, check=True)
    assert "t=1" in err.message


def test_a_state_whose_shape_changes_is_a_spec_error() -> None:
    text = """\
steps: 3
outputs:
  x:
    initial: [1.0]
    step: concatenate([x[t-1], x[t-1]])
"""
    err = fails(text)
    assert err.exit_code == 2
    assert "'x'" in err.message


def test_a_run_that_cannot_fit_in_memory_is_refused() -> None:
    text = """\
steps: 10**13
outputs:
  x:
    initial: 0.0
    step: x[t-1] + 1
"""
    err = fails(text)
    assert err.exit_code == 1
    assert "last=True" in full_text(err)  # the library names its parameter


def test_the_memory_check_counts_lanes() -> None:
    text = """\
params:
  r: linspace(0, 1, 1000000)
steps: 10**8
outputs:
  x:
    initial: 0.0
    step: x[t-1] + r
"""
    err = fails(text)
    assert err.exit_code == 1
    assert "last=True" in full_text(err)  # the library names its parameter


@pytest.mark.parametrize(("keep", "last"), [("last", False), ("all", True)])
def test_keeping_only_the_last_state_makes_a_long_run_fit(keep: str, last: bool) -> None:
    text = f"""\
steps: 10**13
until: x[t] >= 3
outputs:
  x:
    initial: 0.0
    step: x[t-1] + 1
    keep: {keep}
"""
    result = run_yaml(text, last=last)
    assert result["x"].shape == ()
    assert float(result["x"]) == 3.0
    assert result.steps_run == 3


# --- params and inputs -----------------------------------------------------------------


ACCUMULATE = """\
params:
  n: 5
  m: n * 2
sequences:
  i: arange(m + 1)
outputs:
  total:
    initial: 0
    dtype: int64
    step: total[t-1] + i
"""


def _cumsum(values: list[int]) -> list[int]:
    out, total = [], 0
    for v in values:
        total += v
        out.append(total)
    return out


def test_params_defaults() -> None:
    assert run_yaml(ACCUMULATE)["total"].tolist() == _cumsum(list(range(11)))


@pytest.mark.parametrize("value", ["10", 10, "4 + 6"])
def test_params_override_recomputes_dependent_params_and_sequences(value: Any) -> None:
    result = run_yaml(ACCUMULATE, params={"n": value})
    assert result.steps_run == 21
    assert result["total"].tolist() == _cumsum(list(range(21)))


def test_params_override_of_a_dependent_param() -> None:
    result = run_yaml(ACCUMULATE, params={"m": "n - 2"})
    assert result["total"].tolist() == _cumsum(list(range(4)))


def test_params_override_with_an_array_gives_lanes() -> None:
    text = """\
params:
  r: 2.0
steps: 3
outputs:
  x:
    initial: 1.0
    step: x[t-1] * r
"""
    assert run_yaml(text)["x"].tolist() == [2.0, 4.0, 8.0]
    got = run_yaml(text, params={"r": numpy.array([1.0, 3.0])})["x"]
    assert got.tolist() == [[1.0, 3.0], [1.0, 9.0], [1.0, 27.0]]
    got = run_yaml(text, params={"r": "linspace(1, 3, 3)"})["x"]
    assert got.shape == (3, 3)


def test_inputs_for_a_sequence_and_a_param() -> None:
    text = """\
params:
  w: input
sequences:
  s: input
outputs:
  y:
    initial: 0.0
    step: y[t-1] * 0.5 + w * s[t+1]
"""
    s = [1.0, -2.0, 0.5, 4.0, 3.0]
    w = [1.0, 10.0]
    result = run_yaml(text, inputs={"s": numpy.array(s), "w": numpy.array(w)})
    out = Output("y", lambda r: r.tap("y", 1) * 0.5 + r.param("w") * r.seq("s", 1), [0.0],
                 frozenset({"w"}))
    want = run_reference([out], params={"w": w}, lanes=2, sequences={"s": (s, {1})})
    assert result["y"].shape == (4, 2)
    assert_array_equal(result["y"], want.trajectories["y"])


def test_missing_input_is_a_usage_error() -> None:
    text = "sequences:\n  s: input\noutputs:\n  x:\n    step: s * 2\n"
    err = fails(text)
    assert err.exit_code == 2


def test_steps_name_and_t_in_a_step() -> None:
    result = run_yaml("steps: 4\noutputs:\n  x:\n    step: steps * 10 + t\n")
    assert result["x"].tolist() == [40.0, 41.0, 42.0, 43.0]


def test_results_are_fresh_arrays() -> None:
    text = "steps: 3\noutputs:\n  x:\n    initial: 1\n    dtype: int64\n    step: x[t-1] + 1\n"
    spec = recur.load(text)
    first = recur.run(spec)["x"]
    first[:] = 0
    assert recur.run(spec)["x"].tolist() == [2, 3, 4]


def test_result_reports_stopped_by_and_steps_run() -> None:
    result = run_yaml(UNTIL.format(until="t >= 2"))
    assert (result.steps_run, result.stopped_by) == (3, "until")
    assert len(result["x"]) == 3


def test_checked_int_reference_sanity() -> None:
    # the reference's own integers: exact, and faulting outside their width
    assert (CheckedInt(2**31 - 2, 32) + 1).value == 2**31 - 1
    with pytest.raises(RefFault):
        CheckedInt(2**31 - 1, 32) + 1
    with pytest.raises(RefFault):
        -CheckedInt(-(2**63))
    assert (CheckedInt(-7) // 2).value == -4 and (CheckedInt(-7) % 2).value == 1
