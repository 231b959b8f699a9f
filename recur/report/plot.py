"""`recur plot`: run a spec and draw its outputs to a .png, .pdf or .svg file.

matplotlib is optional (`pip install 'recur[plot]'`) and is imported only when a figure
is drawn, never when this module is imported. Figures are built without pyplot (no
global state, no GUI): a `Figure` on an Agg canvas, saved with `atomic_write` (a
temporary file beside the target that replaces it only once complete).

What each kept output becomes, one axes per output, stacked:

- a scalar state: a line over t;
- lanes (a 1-D state) swept by a param, that is a strictly monotonic 1-D param with
  one value per lane (`r: linspace(2.5, 4, 400)`): the values of the last half of the
  steps against the param, as points (the logistic sweep's bifurcation diagram);
- other lanes: one line per lane over t up to `MAX_LINES` lanes, else an image
  (t across, lane up) with a colorbar; states of three or more axes are flattened
  into lanes;
- a 2-D state (a matrix per step): an image of the last state, on the values of the
  params that make a lane grid (below), else on row and column indices;
- `keep: last`: a marker at the last step for a scalar, the lanes against the sweep
  param or as bars (a line past `MAX_BARS` lanes), or an image for a matrix.

`--phase X,Y` instead draws output Y against output X, one curve per lane.

Lines or points (`--style`): a flow sampled with a small step is a curve, but a map's
consecutive states are far apart, and lines between them hide the picture. `auto`
measures `jump`: the median distance between consecutive states, each output divided
by its range over the plot (so in the axes' own scale). Above `JUMP` the states are
drawn as points, else as lines. A flow moves a few thousandths of its range per step
(Lotka-Volterra at dt = 0.01: 0.001; at dt = 0.3: 0.02); maps jump a third of it or
more (Henon: 0.5, the logistic map past r = 3.57: 0.4 to 1).

A lane grid: a 2-D state whose lanes come from broadcasting a param of shape (1, N)
(or (N,)) against one of shape (M, 1), as `x: reshape(linspace(-2, 1, N), (1, N))`,
`y: reshape(linspace(-1, 1, M), (M, 1))`. Each image axis shows the values of the first
such param that is evenly spaced, increasing from the lower left as on a plane; where
there is none, that axis shows indices and the title says why. When both axes come
from params whose spans are within `SAME_UNITS` of each other (a region of a plane,
not a rate against a count), the image keeps their aspect: a circle stays round.
"""

from __future__ import annotations

import contextlib
import errno
import os
import textwrap
import warnings
from collections.abc import Container, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import numpy as np

from recur.diagnostics import UsageError, did_you_mean
from recur.io import atomic_write, cannot_write
from recur.lang.host import to_host
from recur.lang.keep import kept_steps
from recur.lang.keep import per_step as is_per_step

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from recur.api import Result, Spec



class Shown(Protocol):
    """A finished run as a figure needs it: the spec, its result, the outputs to draw."""

    @property
    def spec(self) -> Spec: ...

    @property
    def result(self) -> Result: ...

    @property
    def names(self) -> tuple[str, ...]: ...


FORMATS = ("png", "pdf", "svg")
DPI = 100
WIDTH = 8.0  # inches
MAX_LINES = 8  # lanes drawn as separate lines; more become an image
MAX_BARS = 64  # final-state lanes drawn as bars; more become a line
MAX_MARKED = 60  # lines of up to this many steps mark each step
JUMP = 0.25  # `auto` draws points above this median step, in ranges (module docstring)
SAME_UNITS = 4.0  # grid axes whose spans are within this factor share units
STYLES = ("auto", "points", "lines")
INSTALL_NOTE = "pip install 'recur[plot]'"


# -- checks ---------------------------------------------------------------------------


def require_matplotlib() -> tuple[type[Figure], type[FigureCanvasAgg]]:
    """matplotlib's `Figure` and Agg canvas, or a usage error saying how to install it."""
    try:
        import matplotlib  # noqa: F401  (first: a missing or blocked package fails here)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError("recur plot needs matplotlib", notes=(INSTALL_NOTE,)) from None
    return Figure, FigureCanvasAgg


def figure_format(path: str) -> str:
    """The format of `-o PATH`, from its suffix."""
    suffix = os.path.splitext(path)[1].lower()[1:]
    if suffix not in FORMATS:
        raise UsageError(f"cannot tell the figure format of {path!r}",
                         notes=("use a .png, .pdf or .svg suffix",))
    return suffix


def check_writable(path: str) -> None:
    if os.path.isdir(path):
        raise cannot_write(path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)))
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise cannot_write(path, FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)))


def parse_phase(text: str) -> tuple[str, str]:
    """`--phase X,Y` as the pair (X, Y)."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise UsageError(f"--phase expects two outputs X,Y, got {text!r}",
                         notes=("e.g. --phase prey,pred",))
    return parts[0], parts[1]


def check_phase(spec: Spec, pair: tuple[str, str], *, last: bool = False) -> None:
    """Both outputs of `--phase` exist and keep every step."""
    keeps = {o.name.name: o.keep for o in spec.outputs}
    for name in pair:
        if name not in keeps:
            raise UsageError(
                f"--phase {','.join(pair)}: the spec has no output '{name}'",
                notes=did_you_mean(name, keeps) or (f"outputs: {', '.join(keeps)}",),
            )
        if keeps[name] != "all":
            raise UsageError(
                f"--phase {','.join(pair)}: output '{name}' is 'keep: {keeps[name]}', but a "
                "phase portrait needs every step", notes=(f"set 'keep: all' on '{name}'",))
    if last:
        raise UsageError("--phase needs every step, --last keeps only the final state",
                         notes=("drop --last",))


# -- the figure -----------------------------------------------------------------------


def make_figure(ran: Shown, phase: tuple[str, str] | str | None = None,
                title: str | None = None, style: str = "auto") -> Figure:
    """Draw a finished run: each shown output against t (or a sweep param), or a phase
    portrait of `phase` = (X, Y) or "X,Y". `title` defaults to the description's first
    line; `style` is one of `STYLES`, for lines over t and phase portraits. Returns a
    matplotlib `Figure` on an Agg canvas (no pyplot involved)."""
    new_figure, canvas = require_matplotlib()
    if style not in STYLES:
        raise UsageError(f"unknown plot style {style!r}",
                         notes=(f"use one of {', '.join(STYLES)}",))

    if title is None:
        lines = ran.spec.description.strip().splitlines()
        title = lines[0] if lines else ""
    if isinstance(phase, str):
        phase = parse_phase(phase)
    if phase is not None:
        check_phase(ran.spec, phase,
                    last=any(ran.result.keeps.get(name) != "all" for name in phase))
        figure = new_figure(figsize=(6.5, 6.0), dpi=DPI, layout="constrained")
        with _quiet():
            _draw_phase(figure.add_subplot(), ran, *phase, style=style)
    else:
        if not ran.names:
            raise UsageError("nothing to plot: no output is kept",
                             notes=("set 'keep: all' or 'keep: last' on an output",))
        count = len(ran.names)
        height = 5.0 if count == 1 else 1.0 + 2.5 * count
        figure = new_figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")
        with _quiet():
            _draw_outputs(figure, ran, style)
    canvas(figure)
    if title:
        figure.suptitle(textwrap.fill(title, 90))
    return figure


def _draw_outputs(figure: Figure, ran: Shown, style: str) -> None:
    count = len(ran.names)
    shared: Axes | None = None  # the first axes over t; later ones share its x axis
    over_t: list[bool] = []
    axes_list: list[Axes] = []
    for index, name in enumerate(ran.names):
        kind = _kind(ran, name)
        is_t = kind in ("trace", "image_t", "marker")
        ax = figure.add_subplot(count, 1, index + 1, sharex=shared if is_t else None)
        if is_t and shared is None:
            shared = ax
        if kind == "trace":
            _draw_trace(ax, ran, name, style)
        else:
            _DRAW[kind](ax, ran, name)
        over_t.append(is_t)
        axes_list.append(ax)
    # Stacked axes over t show the t ticks and label once, on the lowest of a run of them.
    for index, ax in enumerate(axes_list[:-1]):
        if over_t[index] and over_t[index + 1]:
            ax.tick_params(labelbottom=False)
            ax.set_xlabel("")


def _kind(ran: Shown, name: str) -> str:
    array = ran.result[name]
    per_step = is_per_step(ran.result.keeps[name])
    state = array.shape[1:] if per_step else array.shape
    if len(state) == 0:
        return "trace" if per_step else "marker"
    if len(state) == 2:
        return "image_last" if per_step else "image_state"
    lanes = int(np.prod(state))
    if _sweep_param(ran, lanes if len(state) == 1 else -1) is not None:
        return "sweep" if per_step else "sweep_last"
    if per_step:
        return "trace" if lanes <= MAX_LINES else "image_t"
    return "bars"


def _real_params(ran: Shown, shapes: Container[tuple[int, ...]]
                 ) -> Iterator[tuple[str, np.ndarray]]:
    """The run's finite real params of one of `shapes`, in declaration order, as float64
    host arrays: what a sweep or a grid axis can be read from. The shape is checked
    first, so that no other param is copied from a GPU or converted."""
    for declared in ran.spec.params:
        name = declared.name.name
        if name not in ran.result.params or np.shape(ran.result.params[name]) not in shapes:
            continue
        value = to_host(ran.result.params[name])
        if value.dtype.kind in "iuf" and np.all(np.isfinite(value)):
            yield name, value.astype(np.float64)


def _sweep_param(ran: Shown, lanes: int) -> tuple[str, np.ndarray] | None:
    """The first param with one value per lane, strictly monotonic: what the lanes sweep."""
    if lanes < 2:
        return None
    for name, value in _real_params(ran, [(lanes,)]):
        steps = np.diff(value)
        if np.all(steps > 0) or np.all(steps < 0):
            return name, value
    return None


def jump(*coordinates: np.ndarray) -> float:
    """The median distance between consecutive states, each coordinate (steps by lanes)
    divided by its range: how far a step moves in the axes' own scale. Coordinates
    without a finite range, and steps with a non-finite end, are left out; 0.0 when
    nothing is left."""
    squares: np.ndarray | float = 0.0
    for values in coordinates:
        finite = values[np.isfinite(values)]
        span = float(np.ptp(finite)) if finite.size else 0.0
        if span > 0 and np.isfinite(span):
            squares = squares + (np.diff(values, axis=0) / span) ** 2
    steps = np.sqrt(squares)
    if np.ndim(steps) == 0:
        return 0.0
    steps = steps[np.isfinite(steps)]
    return float(np.median(steps)) if steps.size else 0.0


def resolve_style(style: str, *coordinates: np.ndarray) -> str:
    """`points` or `lines`: `style` itself, or for `auto` points where the states jump
    (`jump` above `JUMP`: a map), lines where they move smoothly (a sampled flow)."""
    if style != "auto":
        return style
    return "points" if jump(*coordinates) > JUMP else "lines"


def _draw_trace(ax: Axes, ran: Shown, name: str, style: str) -> None:
    """A scalar or a few lanes over t: one line (or set of points) per lane."""
    label, values = _plottable(name, ran.result[name])
    lanes = _as_lanes(values)
    points = resolve_style(style, lanes) == "points"
    t = np.asarray(kept_steps(ran.result.keeps[name], ran.result.steps_run))  # every K: K-1, ...
    for lane in range(lanes.shape[1]):
        lane_label = label if values.ndim == 1 else _lane_name(label, values, lane)
        _trace(ax, t, lanes[:, lane], points=points, total=lanes.size, label=lane_label)
    if lanes.shape[1] > 1:
        ax.legend(fontsize="small", loc="best")
    _label(ax, "t", label)
    _no_steps(ax, len(values))


def _trace(ax: Axes, x: np.ndarray, y: np.ndarray, *, points: bool, total: int,
           label: str | None = None, faint: bool = False) -> None:
    """One lane: points sized for `total` points in all, or a line that marks each step
    when there are few."""
    if points:
        size = 4.0 if total <= 500 else 2.0 if total <= 5000 else 1.2
        ax.plot(x, y, linestyle="none", marker="o", markersize=size, markeredgewidth=0,
                label=label, alpha=0.5 if faint else 1.0, rasterized=total > 5000)
    else:
        ax.plot(x, y, linewidth=0.5 if faint else 1.2, alpha=0.5 if faint else 1.0,
                marker="o" if len(y) <= MAX_MARKED else None, markersize=3, label=label)


def _draw_image_t(ax: Axes, ran: Shown, name: str) -> None:
    label, values = _plottable(name, ran.result[name])
    values = _as_lanes(values)
    steps, lanes = values.shape
    if steps == 0:
        _label(ax, "t", f"{label} lane")
        _no_steps(ax, 0)
        return
    image = ax.imshow(values.T, aspect="auto", origin="lower", interpolation="nearest",
                      extent=(-0.5, steps - 0.5, -0.5, lanes - 0.5))
    ax.figure.colorbar(image, ax=ax, label=label)
    _label(ax, "t", f"{label} lane")
    _integer_ticks(ax.yaxis)


def _draw_sweep(ax: Axes, ran: Shown, name: str) -> None:
    """The last half of the steps against the swept param: a bifurcation diagram."""
    label, values = _plottable(name, ran.result[name])
    param, swept = _sweep_param(ran, values.shape[1])  # type: ignore[misc]
    tail = values[len(values) // 2:]
    x = np.broadcast_to(swept, tail.shape).ravel()
    many = len(swept) >= 100  # dense sweeps need fine points; a few lanes, visible ones
    ax.scatter(x, tail.ravel(), s=1.0 if many else 6.0, marker="." if many else "o", linewidths=0,
               color="black", alpha=0.8 if many else 1.0, rasterized=True)
    ax.margins(x=0.01 if many else 0.05)
    _label(ax, param, f"{label}, last {len(tail)} of {len(values)} steps")
    _no_steps(ax, len(values))


def _draw_sweep_last(ax: Axes, ran: Shown, name: str) -> None:
    label, values = _plottable(name, ran.result[name])
    param, swept = _sweep_param(ran, values.shape[0])  # type: ignore[misc]
    ax.plot(swept, values, marker=".", linestyle="none", markersize=3 if len(values) >= 100 else 6,
            color="black")
    ax.margins(x=0.01 if len(values) >= 100 else 0.05)
    _label(ax, param, f"{label} (final state)")


def _draw_image_last(ax: Axes, ran: Shown, name: str) -> None:
    label, values = _plottable(name, ran.result[name])
    if len(values) == 0:
        _label(ax, "", label)
        _no_steps(ax, 0)
        return
    _matrix(ax, ran, values[-1], f"{label} at t = {len(values) - 1}")


def _draw_image_state(ax: Axes, ran: Shown, name: str) -> None:
    label, values = _plottable(name, ran.result[name])
    _matrix(ax, ran, values, f"{label} (final state)")


@dataclass(frozen=True)
class GridAxis:
    """One axis of a lane grid: the param that varies along it, its values increasing."""

    name: str
    values: np.ndarray  # evenly spaced, increasing
    flipped: bool  # the param decreases along the state's axis

    @property
    def edges(self) -> tuple[float, float]:
        """Where the first and last pixels end: half a step beyond each value."""
        half = (self.values[1] - self.values[0]) / 2
        return float(self.values[0] - half), float(self.values[-1] + half)

    @property
    def span(self) -> float:
        low, high = self.edges
        return high - low


def grid_axis(ran: Shown, shape: tuple[int, ...], axis: int) -> GridAxis | None:
    """The first evenly spaced param that varies along `axis` (0: rows, 1: columns) of a
    2-D state of `shape`, and along no other: shaped (M, 1) for rows, (1, N) or (N,)
    for columns. Evenly: every value within 1% of a step of a linspace's."""
    size = shape[axis]
    if size < 2:
        return None
    shapes = [(size, 1)] if axis == 0 else [(1, size), (size,)]
    for name, value in _real_params(ran, shapes):
        flat = value.ravel()
        step = (flat[-1] - flat[0]) / (size - 1)
        if step != 0 and np.all(np.abs(flat - np.linspace(flat[0], flat[-1], size))
                                <= 0.01 * abs(step)):
            return GridAxis(name, flat if step > 0 else flat[::-1], bool(step < 0))
    return None


def _matrix(ax: Axes, ran: Shown, values: np.ndarray, label: str) -> None:
    """A matrix, or a lane grid on its params' values with its origin at the lower left."""
    rows, cols = grid_axis(ran, values.shape, 0), grid_axis(ran, values.shape, 1)
    if rows is None and cols is None:  # a matrix: row 0 at the top, as it is printed
        image = ax.imshow(values, aspect="auto", interpolation="nearest")
    else:
        values = values[::-1] if rows is not None and rows.flipped else values
        values = values[:, ::-1] if cols is not None and cols.flipped else values
        height, width = values.shape
        x = cols.edges if cols is not None else (-0.5, width - 0.5)
        y = rows.edges if rows is not None else (-0.5, height - 0.5)
        same_units = (rows is not None and cols is not None
                      and max(rows.span, cols.span) <= SAME_UNITS * min(rows.span, cols.span))
        image = ax.imshow(values, origin="lower", extent=(*x, *y), interpolation="nearest",
                          aspect="equal" if same_units else "auto")
    ax.figure.colorbar(image, ax=ax)
    ax.set_title("\n".join([label, *_index_note(rows, cols, values.shape)]), fontsize="medium")
    _label(ax, cols.name if cols is not None else "column",
           rows.name if rows is not None else "row")
    _integer_ticks(*[axis for axis, grid in ((ax.xaxis, cols), (ax.yaxis, rows)) if grid is None])


def _index_note(rows: GridAxis | None, cols: GridAxis | None,
                shape: tuple[int, ...]) -> list[str]:
    """Why an image axis shows indices: the param shape that would give it values."""
    missing = [f"({wanted}) for {what}" for what, grid, wanted in (
        ("rows", rows, f"{shape[0]}, 1"), ("columns", cols, f"1, {shape[1]}")) if grid is None]
    if not missing:
        return []
    return [f"indices: no evenly spaced param shaped {' or '.join(missing)}"]


def _draw_marker(ax: Axes, ran: Shown, name: str) -> None:
    """A final scalar: one marker at the last step taken (t = -1: the initial state)."""
    label, value = _plottable(name, ran.result[name])
    t = ran.result.steps_run - 1
    ax.plot([t], [value], marker="o", linestyle="none", markersize=7)
    ax.annotate(f"{value.item():.6g}", (t, value.item()), textcoords="offset points",
                xytext=(8, 6))
    _label(ax, "t", f"{label} (final state)")


def _draw_bars(ax: Axes, ran: Shown, name: str) -> None:
    label, values = _plottable(name, ran.result[name])
    values = values.ravel()
    lanes = np.arange(len(values))
    if len(values) <= MAX_BARS:
        ax.bar(lanes, values)
    else:
        ax.plot(lanes, values, linewidth=1.0)
    _label(ax, f"{name} lane", f"{label} (final state)")
    _integer_ticks(ax.xaxis)


_DRAW = {
    "image_t": _draw_image_t,
    "sweep": _draw_sweep, "sweep_last": _draw_sweep_last, "image_last": _draw_image_last,
    "image_state": _draw_image_state, "marker": _draw_marker, "bars": _draw_bars,
}


def _draw_phase(ax: Axes, ran: Shown, x_name: str, y_name: str, style: str) -> None:
    x_label, x = _plottable(x_name, ran.result[x_name])
    y_label, y = _plottable(y_name, ran.result[y_name])
    if x.shape != y.shape:
        raise UsageError(
            f"--phase {x_name},{y_name}: the states differ in shape, {x.shape[1:]} and "
            f"{y.shape[1:]}", notes=("a phase portrait needs two scalar outputs, or two with "
                                     "the same lanes",))
    x, y = _as_lanes(x), _as_lanes(y)
    points = resolve_style(style, x, y) == "points"
    for lane in range(x.shape[1]):
        _trace(ax, x[:, lane], y[:, lane], points=points, total=x.size,
               faint=x.shape[1] > MAX_LINES)
    if len(x):
        ax.scatter(x[0], y[0], s=18, color="black", zorder=3, label="t = 0")
        ax.legend(fontsize="small", loc="best")
    _label(ax, x_label, y_label)
    _no_steps(ax, len(x))


# -- helpers --------------------------------------------------------------------------


def _plottable(name: str, array: Any) -> tuple[str, np.ndarray]:
    """A float64 host array to draw, and its label: |x| for complex, inf as a gap."""
    values = to_host(array)
    label = name
    if values.dtype.kind == "c":
        values, label = np.abs(values), f"|{name}|"
    values = values.astype(np.float64)
    return label, np.where(np.isfinite(values), values, np.nan)


def _as_lanes(values: np.ndarray) -> np.ndarray:
    """Steps by lanes: (steps, *state) flattened to (steps, number of lanes)."""
    return values.reshape(len(values), int(np.prod(values.shape[1:])))


def _lane_name(label: str, array: np.ndarray, lane: int) -> str:
    index = np.unravel_index(lane, array.shape[1:])
    return f"{label}[{','.join(str(int(i)) for i in index)}]"


def _label(ax: Axes, xlabel: str, ylabel: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def _integer_ticks(*axes: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    for axis in axes:
        axis.set_major_locator(MaxNLocator(integer=True))


def _no_steps(ax: Axes, steps: int) -> None:
    if steps == 0:
        ax.text(0.5, 0.5, "no steps", transform=ax.transAxes, ha="center", va="center",
                color="gray")


# -- writing --------------------------------------------------------------------------


def write_figure(figure: Figure, path: str, fmt: str | None = None, *,
                 force: bool = False) -> None:
    """Save to a temporary file beside `path`, then rename it onto `path`: whole or not
    at all (`recur.io.atomic_write`, which keeps the old file's mode and refuses one this
    user may not write unless `force`)."""
    fmt = fmt or figure_format(path)
    check_writable(path)

    def save(stream: BinaryIO) -> None:
        with _quiet():
            figure.savefig(stream, format=fmt, dpi=DPI)

    atomic_write(path, save, force=force)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No warnings about all-NaN data or empty axes on stderr: the figure shows them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
