"""`recur plot` through the command group, and the figures it draws.

Set RECUR_PLOT_DIR to a folder to keep a copy of every PNG these tests make (to look at).
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import statistics
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from recur.cli.main import cli
from recur.cli.options import Ran, RunFlags, run_from_options
from recur.cli.plot import plot
from recur.diagnostics import UsageError
from recur.report.plot import JUMP, jump, make_figure, resolve_style

SPECS = Path(__file__).resolve().parents[2] / "specs"
EXAMPLES = SPECS.parent / "docs" / "examples"
HENON = str(EXAMPLES / "henon.yaml")
MANDELBROT = str(EXAMPLES / "mandelbrot.yaml")
SWEEP = str(SPECS / "logistic_sweep.yaml")
LOTKA = str(SPECS / "lotka_volterra.yaml")
FIB = str(SPECS / "fibonacci.yaml")
RNN = str(SPECS / "rnn.yaml")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

MIXED = """\
description: |
  Every kind of axes
  (a second line, not in the title)
params:
  A: [[0.9, 0.1], [0.0, 0.8]]
  k: [1.0, 2.0, 3.0, 5.0]
  noise: 3 + sin(arange(20))
steps: 12
outputs:
  M:
    initial: eye(2)
    step: A @ M[t-1]
  s:
    initial: 1.0
    keep: last
    step: s[t-1] * 0.9
  z:
    initial: 0.0
    step: z[t-1] + k
  img:
    initial: 0.5
    step: noise * img[t-1] * (1 - img[t-1])
  w:
    initial: 0.0
    step: w[t-1] + t
"""


@pytest.fixture
def mpl() -> Any:
    return pytest.importorskip("matplotlib")


@pytest.fixture(autouse=True)
def registered() -> Iterator[None]:
    """The lead registers the command in recur.cli.main; here the tests do it."""
    cli.add_command(plot)
    yield


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, ["plot", *args])


def run_spec(*args: str) -> Ran:
    """Run a spec with `recur plot`'s own option parsing (defaults included)."""
    params = dict(plot.make_context("plot", [*args, "-o", "unused.png"]).params)
    return run_from_options(RunFlags.take(params))


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def keep_copy(path: Path, name: str) -> None:
    folder = os.environ.get("RECUR_PLOT_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)
        shutil.copyfile(path, os.path.join(folder, name))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- the logistic sweep: a bifurcation diagram ------------------------------------------


def test_logistic_sweep_writes_a_png_of_the_expected_size(mpl: Any, tmp_path: Path) -> None:
    out = tmp_path / "sweep.png"
    result = invoke(SWEEP, "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    keep_copy(out, "logistic_sweep.png")
    assert png_size(out) == (800, 500)
    assert leftovers(tmp_path) == ["sweep.png"]


def test_logistic_sweep_figure_is_a_bifurcation_diagram(mpl: Any) -> None:
    ran = run_spec(SWEEP)
    figure = make_figure(ran)
    (ax,) = figure.axes
    assert ax.get_xlabel() == "r"
    assert ax.get_ylabel().startswith("x")
    assert figure.get_suptitle().startswith("Logistic map")
    (points,) = ax.collections
    xy = points.get_offsets()
    assert xy.shape == (400 * 150, 2)  # every lane, the last half of 300 steps
    r, x = np.asarray(xy[:, 0]), np.asarray(xy[:, 1])
    assert r.min() == 2.5 and r.max() == 4.0
    assert x.min() >= 0 and x.max() <= 1

    def branches(r_lo: float, r_hi: float) -> int:
        """The typical (median) number of clusters of x in a lane of r_lo <= r <= r_hi:
        1 for a fixed point, 2, 4, ... as the period doubles, many in chaos."""
        counts = []
        for lane in np.unique(r[(r >= r_lo) & (r <= r_hi)]):
            values = np.sort(x[r == lane])
            counts.append(1 + int(np.sum(np.diff(values) > 1e-3)))
        return int(np.median(counts))

    assert branches(2.6, 2.9) == 1  # a fixed point
    assert branches(3.1, 3.3) == 2  # period 2
    assert branches(3.46, 3.52) == 4  # period 4
    assert branches(3.9, 3.99) > 20  # chaos, windows of order aside
    assert np.ptp(x[r > 3.9]) > 0.8


def test_logistic_sweep_pixels_show_the_diagram(mpl: Any, tmp_path: Path) -> None:
    """Dark points: one thin band at r < 3, two at r = 3.2, spread out past r = 3.6."""
    out = tmp_path / "sweep.png"
    assert invoke(SWEEP, "-o", str(out)).exit_code == 0
    image = mpl.image.imread(out)  # rows top to bottom, RGBA in [0, 1]
    height = image.shape[0]
    figure = make_figure(run_spec(SWEEP))  # the same layout, to map data to pixels
    figure.canvas.draw()
    ax = figure.axes[0]
    dark = image[..., :3].mean(axis=2) < 0.6

    def dark_rows(r_value: float) -> np.ndarray:
        """The pixel rows with a dark point in the column of r, within the axes."""
        (px, top), (_, bottom) = ax.transData.transform([(r_value, 1.0), (r_value, 0.0)])
        column = round(px)
        rows = range(height - int(top) + 2, height - int(bottom) - 2)
        return np.array([row for row in rows if dark[row, column - 1:column + 2].any()])

    def bands(rows: np.ndarray) -> int:
        return 1 + int(np.sum(np.diff(rows) > 3)) if len(rows) else 0

    span = (ax.transData.transform((3, 1))[1] - ax.transData.transform((3, 0))[1])
    assert bands(dark_rows(2.7)) == 1 and np.ptp(dark_rows(2.7)) < 0.05 * span
    assert bands(dark_rows(3.2)) == 2
    chaotic = np.concatenate([dark_rows(r) for r in np.linspace(3.8, 3.99, 10)])
    assert np.ptp(chaotic) > 0.7 * span  # dark points over most of the right part's height
    assert len(np.unique(chaotic)) > 0.3 * span


def test_a_sweep_param_set_on_the_command_line_is_followed(mpl: Any) -> None:
    ran = run_spec(SWEEP, "--set", "r=linspace(3.5, 4, 50)", "--steps", "40")
    ax = make_figure(ran).axes[0]
    xy = ax.collections[0].get_offsets()
    assert xy.shape == (50 * 20, 2) and xy[:, 0].min() == 3.5


# -- Lotka-Volterra: a phase portrait ---------------------------------------------------


def test_lotka_volterra_phase_portrait(mpl: Any, tmp_path: Path) -> None:
    out = tmp_path / "phase.png"
    result = invoke(LOTKA, "--phase", "prey,pred", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    keep_copy(out, "lotka_volterra_phase.png")
    assert png_size(out) == (650, 600)

    ran = run_spec(LOTKA)
    (ax,) = make_figure(ran, phase="prey,pred").axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("prey", "pred")
    (orbit,) = ax.lines
    prey, pred = orbit.get_xdata(), orbit.get_ydata()
    assert np.array_equal(prey, ran.result["prey"])
    assert np.array_equal(pred, ran.result["pred"])
    assert 29 < prey.max() < 29.5
    # A closed orbit: the second cycle runs over the first (symplectic Euler).
    first = np.stack([prey[:1500], pred[:1500]], axis=1)  # a cycle is ~1440 steps
    second = np.stack([prey[1500:], pred[1500:]], axis=1)
    gaps = np.linalg.norm(second[:, None, :] - first[None, :, :], axis=2).min(axis=1)
    assert gaps.max() < 0.3


def test_lotka_volterra_default_is_two_stacked_axes_over_t(mpl: Any, tmp_path: Path) -> None:
    out = tmp_path / "lv.png"
    assert invoke(LOTKA, "-o", str(out)).exit_code == 0
    keep_copy(out, "lotka_volterra.png")
    assert png_size(out) == (800, 600)
    prey_ax, pred_ax = make_figure(run_spec(LOTKA)).axes
    assert (prey_ax.get_ylabel(), pred_ax.get_ylabel()) == ("prey", "pred")
    assert pred_ax.get_xlabel() == "t" and prey_ax.get_xlabel() == ""  # t labelled once
    assert prey_ax.get_shared_x_axes().joined(prey_ax, pred_ax)


# -- Fibonacci: one line over t ---------------------------------------------------------


def test_fibonacci_default_is_one_line_over_t(mpl: Any, tmp_path: Path) -> None:
    out = tmp_path / "fib.png"
    result = invoke(FIB, "-o", str(out))
    assert result.exit_code == 0, result.stderr
    keep_copy(out, "fibonacci.png")
    assert png_size(out) == (800, 500)
    figure = make_figure(run_spec(FIB))
    (ax,) = figure.axes
    (line,) = ax.lines
    assert line.get_xdata().tolist() == list(range(10))
    assert line.get_ydata().tolist() == [1, 2, 3, 5, 8, 13, 21, 34, 55, 89]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("t", "x")
    assert figure.get_suptitle() == "Fibonacci numbers, x(n) = x(n-1) + x(n-2)"


def test_title_option_replaces_the_description(mpl: Any, tmp_path: Path) -> None:
    assert make_figure(run_spec(FIB), title="Rabbits").get_suptitle() == "Rabbits"
    assert make_figure(run_spec(FIB), title="").get_suptitle() == ""
    result = invoke(FIB, "-o", str(tmp_path / "f.png"), "--title", "Rabbits")
    assert result.exit_code == 0, result.stderr


# -- lines or points: a map jumps, a flow moves ------------------------------------------


def median_step(*series: list[float]) -> float:
    """`jump` by hand: the median distance between consecutive points, each coordinate
    divided by its range."""
    spans = [max(values) - min(values) for values in series]
    steps = [math.hypot(*((values[i + 1] - values[i]) / span
                          for values, span in zip(series, spans, strict=True)))
             for i in range(len(series[0]) - 1)]
    return statistics.median(steps)


def drawn_as(line: Any) -> str:
    if line.get_linestyle() == "None" and line.get_marker() == "o":
        return "points"
    assert line.get_linestyle() == "-"
    return "lines"


@pytest.mark.parametrize(("values", "expected"), [
    ([0.0, 1.0, 0.0, 1.0], 1.0),
    ([float(i) for i in range(11)], 0.1),
    ([0.0, 4.0, 4.0, 4.0, 2.0], 0.25),  # steps 1, 0, 0, 0.5: the middle two's mean
    ([0.0, float("nan"), 1.0, 0.0, 0.5], 0.75),  # the steps next to nan are left out
    ([3.0, 3.0, 3.0], 0.0),  # no range
])
def test_jump_of_one_coordinate(values: list[float], expected: float) -> None:
    assert jump(np.array(values)[:, None]) == pytest.approx(expected)


def test_jump_of_two_coordinates_measures_each_in_its_own_range() -> None:
    x, y = [0.0, 3.0, 0.0, 0.0], [0.0, 0.0, 400.0, 0.0]  # steps (1, 0), (-1, 1), (0, -1)
    assert jump(np.array(x)[:, None], np.array(y)[:, None]) == pytest.approx(1.0)
    x, y = [0.0, 3.0, 0.0], [0.0, 0.0, 400.0]
    assert jump(np.array(x)[:, None], np.array(y)[:, None]) == pytest.approx(
        (1 + math.sqrt(2)) / 2)


@pytest.mark.parametrize(("step", "style"), [(JUMP - 0.01, "lines"), (JUMP, "lines"),
                                              (JUMP + 0.01, "points")])
def test_auto_draws_points_only_above_the_threshold(step: float, style: str) -> None:
    values = np.array([0.0, 1.0] + [1.0 - step, 1.0] * 4)  # range 1, steps 1 and step
    assert median_step(values.tolist()) == pytest.approx(step)
    assert resolve_style("auto", values[:, None]) == style
    assert resolve_style("lines", values[:, None]) == "lines"
    assert resolve_style("points", values[:, None]) == "points"


def test_a_map_is_points_and_a_flow_is_lines_in_a_phase_portrait(mpl: Any,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "henon.png"
    assert invoke(HENON, "--phase", "x,y", "-o", str(out)).exit_code == 0
    keep_copy(out, "henon_phase.png")
    henon = run_spec(HENON)
    assert median_step(henon.result["x"].tolist(), henon.result["y"].tolist()) > 0.4
    (attractor,) = make_figure(henon, phase="x,y").axes[0].lines
    assert drawn_as(attractor) == "points"
    assert np.array_equal(attractor.get_xdata(), henon.result["x"])
    assert np.array_equal(attractor.get_ydata(), henon.result["y"])

    lotka = run_spec(LOTKA)
    assert median_step(lotka.result["prey"].tolist(), lotka.result["pred"].tolist()) < 0.01
    (orbit,) = make_figure(lotka, phase="prey,pred").axes[0].lines
    assert drawn_as(orbit) == "lines"
    # A coarse step is still a flow: about 50 steps per cycle.
    coarse = run_spec(LOTKA, "--set", "dt=0.3", "--steps", "100")
    assert median_step(coarse.result["prey"].tolist(), coarse.result["pred"].tolist()) < 0.1
    assert drawn_as(make_figure(coarse, phase="prey,pred").axes[0].lines[0]) == "lines"


def test_a_map_is_points_and_a_flow_is_lines_over_t(mpl: Any) -> None:
    chaos = run_spec(SWEEP, "--set", "r=3.9", "--steps", "100")
    assert median_step(chaos.result["x"].tolist()) > 0.4
    (line,) = make_figure(chaos).axes[0].lines
    assert drawn_as(line) == "points"
    assert line.get_ydata().tolist() == chaos.result["x"].tolist()
    settled = run_spec(SWEEP, "--set", "r=2.8", "--steps", "100")  # to a fixed point
    assert drawn_as(make_figure(settled).axes[0].lines[0]) == "lines"
    prey_ax, pred_ax = make_figure(run_spec(LOTKA)).axes
    assert drawn_as(prey_ax.lines[0]) == drawn_as(pred_ax.lines[0]) == "lines"
    rnn = make_figure(run_spec(RNN)).axes[0].lines  # three lanes, one rule for all
    assert [drawn_as(line) for line in rnn] == ["lines"] * 3


def test_style_option_overrides_auto(mpl: Any, tmp_path: Path) -> None:
    henon, lotka = run_spec(HENON), run_spec(LOTKA)
    assert drawn_as(make_figure(henon, phase="x,y", style="lines").axes[0].lines[0]) == "lines"
    assert drawn_as(make_figure(lotka, phase="prey,pred", style="points").axes[0].lines[0]) \
        == "points"
    assert drawn_as(make_figure(lotka, style="points").axes[0].lines[0]) == "points"
    for style in ("points", "lines", "auto"):
        result = invoke(HENON, "--phase", "x,y", "--style", style, "-o", str(tmp_path / "h.png"))
        assert result.exit_code == 0, result.stderr
    with pytest.raises(UsageError, match="unknown plot style 'dots'"):
        make_figure(henon, style="dots")
    result = invoke(HENON, "--style", "dots", "-o", str(tmp_path / "h.png"))
    assert result.exit_code == 2
    assert "Invalid value for '--style': 'dots' is not one of 'auto', 'points', 'lines'" \
        in result.stderr


# -- a 2-D lane grid: an image on the params' values -------------------------------------

GRID = """\
description: A lane grid kept every step
params:
  a: reshape(linspace(0, 1, 4), (1, 4))
  b: reshape(linspace(40, 10, 3), (3, 1))
steps: 2
outputs:
  s:
    initial: 0.0
    step: s[t-1] + a * b
"""


def escape_count(x: float, y: float, steps: int) -> int:
    """The Mandelbrot example's `count` for c = x + iy, by a plain loop."""
    zr = zi = 0.0
    count = 0
    for _ in range(steps):
        if zr * zr + zi * zi > 4:
            break
        count += 1
        zr, zi = zr * zr - zi * zi + x, 2 * zr * zi + y
    return count


def test_mandelbrot_is_drawn_on_the_complex_plane(mpl: Any, tmp_path: Path) -> None:
    out = tmp_path / "mandelbrot.png"
    assert invoke(MANDELBROT, "-o", str(out)).exit_code == 0
    keep_copy(out, "mandelbrot.png")
    # The imaginary axis from 1.2 down to -0.4: a param that decreases, over a range
    # that is not symmetric, so that a flipped axis would show.
    ran = run_spec(MANDELBROT, "--steps", "30",
                   "--set", "x=reshape(linspace(-2, 0.5, 101), (1, 101))",
                   "--set", "y=reshape(linspace(1.2, -0.4, 81), (81, 1))")
    (ax, _colorbar) = make_figure(ran).axes
    (image,) = ax.images
    assert image.origin == "lower"
    dx, dy = 2.5 / 100, 1.6 / 80
    assert image.get_extent() == pytest.approx([-2 - dx / 2, 0.5 + dx / 2,
                                                -0.4 - dy / 2, 1.2 + dy / 2])
    bottom, top = ax.get_ylim()
    assert bottom < top and ax.get_xlim()[0] < ax.get_xlim()[1]
    assert ax.get_aspect() == 1.0  # the same units across and up: circles stay round
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "y")
    assert ax.get_title() == "count (final state)"
    # Row i of the image is the i-th lowest y, column j the i-th lowest x.
    xs, ys = np.linspace(-2, 0.5, 101), np.linspace(1.2, -0.4, 81)[::-1]
    expected = [[escape_count(x, y, 30) for x in xs] for y in ys]
    assert np.asarray(image.get_array()).tolist() == expected
    assert expected[-1][60] < 30 and expected[0][60] == 30  # c = -0.5 + 1.2i out, -0.5 - 0.4i in


def test_a_grid_kept_every_step_shows_its_last_state_on_its_params(mpl: Any,
                                                                   tmp_path: Path) -> None:
    spec = tmp_path / "grid.yaml"
    spec.write_text(GRID)
    (ax, _colorbar) = make_figure(run_spec(str(spec))).axes
    (image,) = ax.images
    a, b = np.linspace(0, 1, 4), np.linspace(10, 40, 3)
    assert np.asarray(image.get_array()).tolist() == (2 * np.outer(b, a)).tolist()
    assert image.get_extent() == pytest.approx([-1 / 6, 7 / 6, 2.5, 47.5])
    assert ax.get_aspect() == "auto"  # spans of 1.3 and 45: not one plane
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("a", "b", "s at t = 1")


def test_a_grid_axis_without_an_evenly_spaced_param_shows_indices(mpl: Any,
                                                                  tmp_path: Path) -> None:
    spec = tmp_path / "grid.yaml"
    spec.write_text(GRID)
    ran = run_spec(str(spec), "--set", "a=reshape(arange(4) ** 2, (1, 4))")
    (ax, _colorbar) = make_figure(ran).axes
    (image,) = ax.images
    b = np.linspace(10, 40, 3)
    assert np.asarray(image.get_array()).tolist() == (2 * np.outer(b, np.arange(4) ** 2)).tolist()
    assert image.origin == "lower"
    assert image.get_extent() == pytest.approx([-0.5, 3.5, 2.5, 47.5])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("column", "b")
    assert ax.get_title() == ("s at t = 1\n"
                              "indices: no evenly spaced param shaped (1, 4) for columns")
    assert ax.get_aspect() == "auto"
    # A param of the state's whole shape varies along both axes: it is no axis.
    ran = run_spec(str(spec), "--set", "b=reshape(linspace(40, 10, 12), (3, 4))")
    (ax, _colorbar) = make_figure(ran).axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("a", "row")
    assert ax.get_title().endswith("no evenly spaced param shaped (3, 1) for rows")


# -- the other kinds of axes ------------------------------------------------------------


def test_a_few_lanes_are_lines_with_a_legend(mpl: Any, tmp_path: Path) -> None:
    out = tmp_path / "rnn.png"
    assert invoke(RNN, "-o", str(out)).exit_code == 0
    keep_copy(out, "rnn.png")
    (ax,) = make_figure(run_spec(RNN)).axes
    assert [line.get_label() for line in ax.lines] == ["h[0]", "h[1]", "h[2]"]
    assert ax.get_legend() is not None


def test_every_kind_of_axes(mpl: Any, tmp_path: Path) -> None:
    spec = tmp_path / "mixed.yaml"
    spec.write_text(MIXED)
    out = tmp_path / "mixed.png"
    result = invoke(str(spec), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    keep_copy(out, "mixed.png")
    figure = make_figure(run_spec(str(spec)))
    assert figure.get_suptitle() == "Every kind of axes"
    matrix, _, final, swept, image, _, line = figure.axes  # colorbars follow their axes
    assert matrix.images[0].get_array().shape == (2, 2)  # M: the last state
    assert matrix.get_title() == ("M at t = 11\nindices: no evenly spaced param shaped (2, 1) "
                                  "for rows or (1, 2) for columns")
    assert matrix.images[0].origin == "upper"  # a matrix: row 0 at the top, as printed
    assert final.lines[0].get_xdata().tolist() == [11]  # s: keep last, one marker
    assert swept.get_xlabel() == "k"  # z: lanes swept by the monotonic param k
    assert swept.collections[0].get_offsets().shape == (4 * 6, 2)
    assert image.images[0].get_array().shape == (20, 12)  # img: 20 lanes, not monotonic
    assert image.get_xlabel() == "" and line.get_xlabel() == "t"
    assert line.lines[0].get_ydata()[-1] == sum(range(12))
    assert [ax.get_ylabel() for ax in figure.axes] == [
        "row", "", "s (final state)", "z, last 6 of 12 steps", "img lane", "img", "w"]


def test_final_states(mpl: Any, tmp_path: Path) -> None:
    for spec, name in [(FIB, "fib_last.png"), (RNN, "rnn_last.png"), (SWEEP, "sweep_last.png")]:
        out = tmp_path / name
        result = invoke(spec, "--last", "-o", str(out))
        assert result.exit_code == 0, result.stderr
        keep_copy(out, name)
    (ax,) = make_figure(run_spec(FIB, "--last")).axes
    assert ax.lines[0].get_ydata().tolist() == [89] and ax.texts[0].get_text() == "89"
    (ax,) = make_figure(run_spec(RNN, "--last")).axes
    assert len(ax.patches) == 3  # a bar per lane
    (ax,) = make_figure(run_spec(SWEEP, "--last")).axes
    assert ax.get_xlabel() == "r" and len(ax.lines[0].get_xdata()) == 400


def test_zero_steps_draw_empty_axes(mpl: Any, tmp_path: Path) -> None:
    for spec in (FIB, SWEEP, RNN):
        assert invoke(spec, "--steps", "0", "-o", str(tmp_path / "z.png")).exit_code == 0
    result = invoke(LOTKA, "--steps", "0", "--phase", "prey,pred", "-o", str(tmp_path / "p.png"))
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(("suffix", "magic"), [(".pdf", b"%PDF"), (".svg", b"<?xml"),
                                               (".PNG", PNG_SIGNATURE)])
def test_format_follows_the_suffix(mpl: Any, tmp_path: Path, suffix: str, magic: bytes) -> None:
    out = tmp_path / f"fig{suffix}"
    result = invoke(SWEEP, "--steps", "20", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes().startswith(magic)


# -- errors -----------------------------------------------------------------------------


def test_missing_matplotlib_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    out = tmp_path / "fib.png"
    result = invoke(FIB, "-o", str(out))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "recur: error: recur plot needs matplotlib",
        "note: pip install 'recur[plot]'",
    ]
    assert leftovers(tmp_path) == []


def test_importing_the_module_does_not_import_matplotlib() -> None:
    code = "import sys, recur.report.plot, recur.cli.main; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(("phase", "message", "note"), [
    ("prey,preed", "--phase prey,preed: the spec has no output 'preed'",
     "did you mean 'pred'?"),
    ("pray,pred", "--phase pray,pred: the spec has no output 'pray'", "did you mean 'prey'?"),
    ("prey,wolves", "--phase prey,wolves: the spec has no output 'wolves'",
     "outputs: prey, pred"),
    ("prey", "--phase expects two outputs X,Y, got 'prey'", "e.g. --phase prey,pred"),
    ("prey,pred,prey", "--phase expects two outputs X,Y, got 'prey,pred,prey'",
     "e.g. --phase prey,pred"),
    ("prey,", "--phase expects two outputs X,Y, got 'prey,'", "e.g. --phase prey,pred"),
])
def test_bad_phase_names(mpl: Any, tmp_path: Path, phase: str, message: str, note: str) -> None:
    result = invoke(LOTKA, "--phase", phase, "-o", str(tmp_path / "p.png"))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"recur: error: {message}", f"note: {note}"]
    assert leftovers(tmp_path) == []


def test_phase_needs_every_step(mpl: Any, tmp_path: Path) -> None:
    result = invoke(LOTKA, "--phase", "prey,pred", "--last", "-o", str(tmp_path / "p.png"))
    assert result.exit_code == 2 and "drop --last" in result.stderr
    spec = tmp_path / "mixed.yaml"
    spec.write_text(MIXED)
    result = invoke(str(spec), "--phase", "w,s", "-o", str(tmp_path / "p.png"))
    assert result.exit_code == 2
    assert "output 's' is 'keep: last'" in result.stderr
    result = invoke(str(spec), "--phase", "w,z", "-o", str(tmp_path / "p.png"))
    assert result.exit_code == 2
    assert "the states differ in shape, () and (4,)" in result.stderr
    assert leftovers(tmp_path) == ["mixed.yaml"]


@pytest.mark.parametrize("name", ["fig.jpg", "fig", "fig.npy"])
def test_unknown_suffix(mpl: Any, tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    result = invoke(FIB, "-o", str(out))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"recur: error: cannot tell the figure format of {str(out)!r}",
        "note: use a .png, .pdf or .svg suffix",
    ]
    assert leftovers(tmp_path) == []


def test_out_is_required_and_its_folder_must_exist(mpl: Any, tmp_path: Path) -> None:
    result = invoke(FIB)
    assert result.exit_code == 2 and "Missing option '-o'" in result.stderr
    result = invoke(FIB, "-o", str(tmp_path / "nowhere" / "f.png"))
    assert result.exit_code == 2 and "No such file or directory" in result.stderr
    (tmp_path / "folder.png").mkdir()
    result = invoke(FIB, "-o", str(tmp_path / "folder.png"))
    assert result.exit_code == 2 and "Is a directory" in result.stderr


def test_a_failed_run_writes_nothing(mpl: Any, tmp_path: Path) -> None:
    result = invoke(FIB, "--steps", "100", "-o", str(tmp_path / "fib.png"))  # int64 overflow
    assert result.exit_code == 1 and "overflow" in result.stderr
    assert leftovers(tmp_path) == []


def test_a_failed_save_leaves_no_partial_file(
    mpl: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "fib.png"
    out.write_bytes(b"old")

    def broken_savefig(self: Any, stream: Any, **kwargs: Any) -> None:
        stream.write(PNG_SIGNATURE + b"half a picture")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(mpl.figure.Figure, "savefig", broken_savefig)
    result = invoke(FIB, "-o", str(out))
    assert result.exit_code == 2
    assert f"cannot write {str(out)!r}: No space left on device" in result.stderr
    assert out.read_bytes() == b"old"
    assert leftovers(tmp_path) == ["fib.png"]


def test_help(mpl: Any) -> None:
    result = CliRunner().invoke(cli, ["plot", "--help"])
    assert result.exit_code == 0
    for text in ("Example:", "--phase X,Y", "-o, --out PATH", "--title TEXT", "--steps",
                 "--style [auto|points|lines]", "recur[plot]"):
        assert text in result.stdout
