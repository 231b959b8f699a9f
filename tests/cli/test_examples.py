"""Every spec in specs/ runs, through the library and the CLI, and gives the right numbers.

The generic tests are parametrized over the folder, so a new spec is picked up as soon as
it lands: it must start with a `#` comment header, run with its defaults, and print (as
CSV) exactly what the library returns. The seed specs are held to the results that
SPEC.md's table documents; the other examples are checked against an independent
computation written here with plain NumPy, SciPy or Python.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
from click.testing import CliRunner

import recur
from recur.cli.main import cli
from recur.io import read_input

SPECS = Path(__file__).resolve().parents[2] / "specs"
NOISY = SPECS / "data" / "noisy.csv"
ALL_SPECS = sorted(SPECS.glob("*.yaml"))


def spec(name: str) -> str:
    return str(SPECS / f"{name}.yaml")


def invoke(*args: str, stdin: str | None = None):  # -> click.testing.Result
    return CliRunner().invoke(cli, list(args), input=stdin)


def run_cli(*args: str, stdin: str | None = None) -> str:
    result = invoke("run", *args, stdin=stdin)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout


def parse_csv(text: str) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def column(text: str, name: str) -> list[str]:
    header, rows = parse_csv(text)
    index = header.index(name)
    return [row[index] for row in rows]


def needs_input(path: Path) -> tuple[str, ...]:
    return recur.check(str(path)).needs_input


def skip_if_needs_input(path: Path) -> None:
    names = needs_input(path)
    if names:
        pytest.skip(f"{path.name} needs --input for {', '.join(names)}")


# ---------------------------------------------------------------------------------------
# Every spec in the folder


def test_the_folder_holds_the_examples() -> None:
    names = {p.stem for p in ALL_SPECS}
    assert {
        "accumulate", "fibonacci", "pi", "square_sum", "taylor_exp",
        "logistic_sweep", "lotka_volterra", "moving_average", "newton_sqrt", "linear_filter",
        "collatz", "rnn",
    } <= names


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: p.stem)
def test_spec_starts_with_a_comment_header(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines and lines[0].startswith("# "), f"{path.name} must open with a # comment"
    header = [line for line in lines if line.startswith("#")]
    # The header says how to run it.
    assert any(f"recur {command}" in line for line in header
               for command in ("run", "check", "grad"))
    assert recur.load(str(path)).description


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: p.stem)
def test_spec_checks_clean(path: Path) -> None:
    result = invoke("check", str(path))
    assert result.exit_code == 0, result.output
    assert "ok" in result.stdout


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: p.stem)
def test_spec_runs_with_its_defaults(path: Path) -> None:
    skip_if_needs_input(path)
    result = recur.run(recur.load(str(path)))
    assert len(result) >= 1
    for name, array in result.items():
        assert isinstance(array, np.ndarray), name
        if result.keeps[name] == "all":
            assert array.shape[0] == result.steps_run, name
        if array.dtype.kind in "fc":
            assert np.isfinite(array).all(), name


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: p.stem)
def test_cli_prints_what_the_library_returns(path: Path) -> None:
    skip_if_needs_input(path)
    expected = recur.run(recur.load(str(path)))
    header, rows = parse_csv(run_cli(str(path)))
    if all(keep == "last" for keep in expected.keeps.values()):
        assert len(rows) == 1
    else:
        assert len(rows) == expected.steps_run
    at = 0
    for name, array in expected.items():
        per_row = array if expected.keeps[name] == "all" else array[np.newaxis]
        width = math.prod(per_row.shape[1:])
        if width == 1 and per_row.ndim == 1:
            assert header[at] == name
        else:
            assert header[at].startswith(f"{name}[")
        cells = [row[at:at + width] for row in rows]
        at += width
        flat = per_row.reshape(len(per_row), width)
        if flat.dtype.kind == "b":
            assert cells == [["true" if v else "false" for v in line] for line in flat]
        elif flat.dtype.kind in "iu":
            assert cells == [[str(int(v)) for v in line] for line in flat]
        else:
            # repr(float) round-trips: the CSV holds exactly the library's numbers.
            assert cells == [[repr(float(v)) for v in line] for line in flat]
    assert at == len(header)


# ---------------------------------------------------------------------------------------
# The seed specs: SPEC.md's table, exactly


def test_fibonacci() -> None:
    x = recur.run(recur.load(spec("fibonacci")))["x"]
    assert x.dtype == np.int64
    assert x.tolist() == [1, 2, 3, 5, 8, 13, 21, 34, 55, 89]
    out = run_cli(spec("fibonacci"), "--steps", "10")
    assert out == "x\n1\n2\n3\n5\n8\n13\n21\n34\n55\n89\n"


def test_accumulate() -> None:
    total = recur.run(recur.load(spec("accumulate")))["total"]
    assert total.dtype == np.float64
    assert total.tolist() == [0.0, 1.0, 3.0, 6.0, 10.0, 15.0]
    assert run_cli(spec("accumulate")) == "total\n0.0\n1.0\n3.0\n6.0\n10.0\n15.0\n"


def test_square_sum() -> None:
    result = recur.run(recur.load(spec("square_sum")))
    total = result["total"]
    assert total.dtype == np.int64 and total.shape == ()
    assert int(total) == 55 == sum(i**2 for i in range(6))
    assert run_cli(spec("square_sum")) == "total\n55\n"


def test_pi() -> None:
    pi_sum = recur.run(recur.load(spec("pi")))["pi_sum"]
    assert pi_sum.shape == ()
    assert float(pi_sum) == 3.141561132479808
    assert run_cli(spec("pi")) == "pi_sum\n3.141561132479808\n"


@pytest.mark.parametrize(
    ("x", "expected"),
    [(None, 2.71828182845823), ("-1", 0.36787944117216204), ("0", 1.0)],
)
def test_taylor_exp(x: str | None, expected: float) -> None:
    params = {} if x is None else {"x": x}
    result = recur.run(recur.load(spec("taylor_exp")), params=params)
    assert list(result) == ["exp_sum"]  # power is keep: none
    assert float(result["exp_sum"]) == expected
    sets = [] if x is None else ["--set", f"x={x}"]
    assert run_cli(spec("taylor_exp"), *sets) == f"exp_sum\n{expected!r}\n"
    # and the series, cut after x^14 / 14!, is e^x to within twice the next term
    assert abs(expected - math.exp(float(x or 1))) < 2 / math.factorial(15)


# ---------------------------------------------------------------------------------------
# logistic_sweep: a NumPy loop over the same lanes


def logistic(r: np.ndarray | float, x0: float, steps: int) -> np.ndarray:
    x = np.broadcast_to(np.asarray(x0, dtype=float), np.shape(r)).copy()
    rows = []
    for _ in range(steps):
        x = r * x * (1 - x)
        rows.append(x)
    return np.array(rows)


def test_logistic_sweep_matches_a_numpy_loop() -> None:
    x = recur.run(recur.load(spec("logistic_sweep")))["x"]
    r = np.linspace(2.5, 4.0, 400)
    assert x.shape == (300, 400) and x.dtype == np.float64
    # The chaotic lanes amplify any rounding difference, so the same operations in the
    # same order must give the same bits.
    np.testing.assert_array_equal(x, logistic(r, 0.5, 300))
    # Below r = 3 every lane settles on the fixed point 1 - 1/r (slowly close to 3).
    stable = r < 2.9
    np.testing.assert_allclose(x[-1, stable], 1 - 1 / r[stable], rtol=1e-9)
    assert ((x >= 0) & (x <= 1)).all()


def test_logistic_sweep_single_lane_two_cycle() -> None:
    r = 3.2
    x = recur.run(recur.load(spec("logistic_sweep")), params={"r": "3.2"}, steps=200)["x"]
    assert x.shape == (200,)
    root = math.sqrt((r - 3) * (r + 1))
    low, high = (r + 1 - root) / (2 * r), (r + 1 + root) / (2 * r)
    np.testing.assert_allclose(sorted(x[-2:]), [low, high], rtol=1e-12)
    out = run_cli(spec("logistic_sweep"), "--set", "r=3.2", "--steps", "200")
    assert [float(v) for v in column(out, "x")] == x.tolist()


def test_logistic_sweep_set_linspace_to_npy(tmp_path: Path) -> None:
    target = tmp_path / "zoom.npy"
    run_cli(spec("logistic_sweep"), "--set", "r=linspace(3.5, 4, 100)", "-o", str(target))
    np.testing.assert_array_equal(np.load(target), logistic(np.linspace(3.5, 4, 100), 0.5, 300))


# ---------------------------------------------------------------------------------------
# lotka_volterra: a plain Python loop, symplectic Euler


def lotka_volterra(steps: int, alpha=1.1, beta=0.4, gam=0.4, delta=0.1, dt=0.01):
    prey, pred = 10.0, 10.0
    out = []
    for _ in range(steps):
        prey = prey + dt * prey * (alpha - beta * pred)
        pred = pred + dt * pred * (delta * prey - gam)  # reads this step's prey
        out.append((prey, pred))
    return np.array(out).T


def test_lotka_volterra_matches_a_python_loop() -> None:
    result = recur.run(recur.load(spec("lotka_volterra")))
    assert list(result) == ["prey", "pred"]
    prey, pred = lotka_volterra(3000)
    np.testing.assert_allclose(result["prey"], prey, rtol=1e-12)
    np.testing.assert_allclose(result["pred"], pred, rtol=1e-12)
    # The symplectic step keeps the orbit closed: the prey peaks repeat.
    p = result["prey"]
    peaks = [i for i in range(1, len(p) - 1) if p[i - 1] < p[i] >= p[i + 1]]
    assert len(peaks) == 2
    assert abs(p[peaks[0]] - p[peaks[1]]) < 1e-3
    assert 29.2 < p[peaks[0]] < 29.3


def test_lotka_volterra_set_and_npz(tmp_path: Path) -> None:
    target = tmp_path / "lv.npz"
    run_cli(spec("lotka_volterra"), "--set", "beta=0.5", "--steps", "500", "-o", str(target))
    prey, pred = lotka_volterra(500, beta=0.5)
    with np.load(target) as data:
        assert sorted(data.files) == ["pred", "prey"]
        np.testing.assert_allclose(data["prey"], prey, rtol=1e-12)
        np.testing.assert_allclose(data["pred"], pred, rtol=1e-12)


def test_lotka_volterra_last() -> None:
    out = run_cli(spec("lotka_volterra"), "--last")
    header, rows = parse_csv(out)
    prey, pred = lotka_volterra(3000)
    assert header == ["prey", "pred"] and len(rows) == 1
    np.testing.assert_allclose([float(v) for v in rows[0]], [prey[-1], pred[-1]], rtol=1e-12)


# ---------------------------------------------------------------------------------------
# moving_average: np.convolve in 'valid' mode


def moving_average(s: np.ndarray) -> np.ndarray:
    return np.convolve(s, np.ones(3) / 3, mode="valid")


def test_moving_average_default_sequence() -> None:
    avg = recur.run(recur.load(spec("moving_average")))["avg"]
    k = np.arange(50)
    s = np.sin(2 * np.pi * k / 25) + 0.3 * (-1.0) ** k
    assert avg.shape == (48,)  # len(s) - (kmax - kmin)
    np.testing.assert_allclose(avg, moving_average(s), rtol=1e-12, atol=1e-15)


def test_moving_average_of_the_noisy_csv() -> None:
    with NOISY.open(encoding="utf-8") as f:
        assert next(f).strip() == "s"
        s = np.array([float(line) for line in f])
    assert len(s) == 50
    np.testing.assert_array_equal(read_input("s", str(NOISY)), s)
    inputs = {"s": read_input("s", str(NOISY))}
    result = recur.run(recur.load(spec("moving_average")), inputs=inputs)
    np.testing.assert_allclose(result["avg"], moving_average(s), rtol=1e-12, atol=1e-15)
    out = run_cli(spec("moving_average"), "--input", f"s={NOISY}")
    assert [float(v) for v in column(out, "avg")] == result["avg"].tolist()


def test_moving_average_from_stdin() -> None:
    data = "s\n" + "".join(f"{i}\n" for i in range(1, 11))
    out = run_cli(spec("moving_average"), "--input", "s=-", stdin=data)
    assert out == "avg\n" + "".join(f"{float(i)}\n" for i in range(2, 10))


# ---------------------------------------------------------------------------------------
# newton_sqrt: the same iteration by hand, and math.sqrt


def newton(a: float, tol: float, cap: int = 100) -> list[float]:
    xs, x = [], a
    for _ in range(cap):
        new = (x + a / x) / 2
        xs.append(new)
        if abs(new - x) < tol:
            break
        x = new
    return xs


@pytest.mark.parametrize(
    ("a", "tol", "steps"), [("2", "1e-12", 6), ("1e6", "1e-12", 16), ("2", "1e-3", 4)],
)
def test_newton_sqrt_stops_early(a: str, tol: str, steps: int) -> None:
    result = recur.run(recur.load(spec("newton_sqrt")), params={"a": a, "tol": tol})
    expected = newton(float(a), float(tol))
    assert len(expected) == steps
    assert result.steps_run == steps and result.stopped_by == "until"
    np.testing.assert_allclose(result["x"], expected, rtol=1e-15)
    assert math.isclose(result["x"][-1], math.sqrt(float(a)), rel_tol=1e-6 if tol == "1e-3"
                        else 4e-16)


def test_newton_sqrt_cli() -> None:
    values = [float(v) for v in column(run_cli(spec("newton_sqrt")), "x")]
    assert len(values) == 6
    assert math.isclose(values[-1], math.sqrt(2), rel_tol=4e-16)
    assert run_cli(spec("newton_sqrt"), "--set", "a=1e6", "--last") == "x\n1000.0\n"


# ---------------------------------------------------------------------------------------
# linear_filter: scipy.signal.lfilter


def test_linear_filter_coefficients_are_butterworth() -> None:
    params = recur.run(recur.load(spec("linear_filter")), steps=0).params
    b, a = scipy.signal.butter(2, 0.1)
    np.testing.assert_allclose([params["b0"], params["b1"], params["b2"]], b, rtol=1e-15)
    np.testing.assert_allclose([1.0, params["a1"], params["a2"]], a, rtol=1e-15)


@pytest.mark.parametrize(("f_slow", "f_fast"), [(0.02, 0.4), (0.0, 0.4), (0.02, 0.0)])
def test_linear_filter_matches_lfilter(f_slow: float, f_fast: float) -> None:
    params = {"f_slow": repr(f_slow), "f_fast": repr(f_fast)}
    y = recur.run(recur.load(spec("linear_filter")), params=params)["y"]
    k = np.arange(200)
    signal = np.sin(2 * np.pi * f_slow * k) + np.sin(2 * np.pi * f_fast * k)
    u = np.concatenate([np.zeros(2), signal])
    b, a = scipy.signal.butter(2, 0.1)
    assert y.shape == (200,)
    np.testing.assert_allclose(y, scipy.signal.lfilter(b, a, u)[2:], rtol=1e-10, atol=1e-12)
    tail = np.abs(y[100:]).max()
    if f_slow == 0.0:
        assert tail < 0.01  # the fast sine alone is stopped
    elif f_fast == 0.0:
        assert 0.9 < tail < 1.1  # the slow sine alone passes


def test_linear_filter_own_input(tmp_path: Path) -> None:
    u = np.zeros(30)
    u[5:] = 1.0  # a step
    source = tmp_path / "step.npy"
    np.save(source, u)
    out = run_cli(spec("linear_filter"), "--input", f"u={source}")
    y = np.array([float(v) for v in column(out, "y")])
    b, a = scipy.signal.butter(2, 0.1)
    expected = scipy.signal.lfilter(b, a, u)[2:]  # two steps shorter, as Theano's scan
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    assert abs(y[-1] - 1.0) < 0.05  # unit DC gain


# ---------------------------------------------------------------------------------------
# collatz and rnn


def collatz(x: int) -> list[int]:
    out = []
    while x != 1:
        x = x // 2 if x % 2 == 0 else 3 * x + 1
        out.append(x)
    return out


@pytest.mark.parametrize(("x0", "steps"), [(27, 111), (97, 118), (1, 3)])
def test_collatz(x0: int, steps: int) -> None:
    result = recur.run(recur.load(spec("collatz")), params={"x0": str(x0)})
    x = result["x"]
    assert x.dtype == np.int64
    # From 1, the first step is taken anyway (1 -> 4 -> 2 -> 1): `until` is checked after it.
    expected = collatz(x0) if x0 != 1 else [4, 2, 1]
    assert x.tolist() == expected and len(x) == steps
    assert result.stopped_by == "until"


def test_collatz_cli() -> None:
    values = [int(v) for v in column(run_cli(spec("collatz")), "x")]
    assert values == collatz(27) and max(values) == 9232


def rnn(W, v, b, x: np.ndarray) -> np.ndarray:
    h = np.zeros(3)
    rows = []
    for xt in x:
        h = np.tanh(np.asarray(W) @ h + np.asarray(v) * xt + np.asarray(b))
        rows.append(h)
    return np.array(rows)


W = [[0.5, -0.3, 0.1], [0.2, 0.4, -0.6], [-0.1, 0.3, 0.7]]
V = [1.0, -0.5, 0.25]
B = [0.0, 0.1, -0.1]


def test_rnn_matches_a_numpy_loop() -> None:
    h = recur.run(recur.load(spec("rnn")))["h"]
    x = np.sin(2 * np.pi * np.arange(40) / 20)
    assert h.shape == (40, 3)
    np.testing.assert_allclose(h, rnn(W, V, B, x), rtol=1e-12, atol=1e-15)


def test_rnn_with_the_noisy_input_and_a_new_matrix() -> None:
    x = read_input("x", str(NOISY))  # one plain column: used whatever its title
    assert x.shape == (50,)
    diag = [[0.9, 0, 0], [0, 0.9, 0], [0, 0, 0.9]]
    result = recur.run(
        recur.load(spec("rnn")), inputs={"x": x}, params={"W": repr(diag)},
    )
    np.testing.assert_allclose(result["h"], rnn(diag, V, B, x), rtol=1e-12, atol=1e-15)


def test_results_are_mappings() -> None:
    result = recur.run(recur.load(spec("lotka_volterra")), steps=3)
    assert isinstance(result, Mapping)
    assert {k: v.shape for k, v in result.items()} == {"prey": (3,), "pred": (3,)}
