"""CPU benchmark: recur on the workloads W1-W11 against handwritten numba and jax.lax.scan.

For each spec in workloads/ it measures, as medians over --repeats runs:

- `recur.run` in process, for each engine of --engines, after one warm-up call, beside
  the cost model's estimate of that engine's loop (what `--engine auto` weighs);
- the same workload written by hand with numba and with jax.lax.scan, in process
  after compilation, each first checked against recur's result;
- whole processes, as a person would run them: `recur run SPEC -o /dev/null` and the
  handwritten scripts, with an empty (cold) and then a filled (warm) compilation cache.

It prints one Markdown table to stdout (progress goes to stderr); README.md says what
each column means.

    python benchmarks/cpu.py [--repeats 5] [--only W1,W3] [--engines interp,compiled]
                             [--no-cli] [--json results.json]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
WORKLOADS_DIR = HERE / "workloads"
FIBONACCI = HERE.parent / "specs" / "fibonacci.yaml"
ENGINES = ("auto", "interp", "compiled")
# Relative tolerance of the check by dtype kind; integers and bools must be equal.
RTOL = {"float64": 1e-12, "complex128": 1e-12, "float32": 1e-5}
PROCESS_TIMEOUT_S = 600


@dataclass
class Workload:
    """One spec of workloads/, with the input arrays it reads from files."""

    name: str  # "W3"
    title: str  # "W3 pi"
    spec_path: Path
    inputs: dict[str, np.ndarray]
    input_files: dict[str, Path]


@dataclass
class Row:
    """Every sample of one workload, in seconds; an empty list is a measurement not made."""

    title: str
    recur: dict[str, list[float]] = field(default_factory=dict)  # engine label -> samples
    estimate: dict[str, float] = field(default_factory=dict)  # engine label -> model's s
    numba: list[float] = field(default_factory=list)
    jax: list[float] = field(default_factory=list)
    recur_cold: list[float] = field(default_factory=list)
    recur_warm: list[float] = field(default_factory=list)
    numba_cold: list[float] = field(default_factory=list)
    numba_warm: list[float] = field(default_factory=list)
    jax_script: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- measuring ------------------------------------------------------------------------


def time_calls(call: Callable[[], object], repeats: int) -> list[float]:
    """Seconds of each of `repeats` calls; the caller has made the warm-up call."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def time_process(command: Sequence[str], env: Mapping[str, str]) -> tuple[float, str | None]:
    """Wall-clock seconds of one whole process, and its error (None when it exits 0)."""
    start = time.perf_counter()
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        return elapsed, f"exit {done.returncode}: {last}"
    return elapsed, None


def cold_and_warm(
    command: Sequence[str], repeats: int, scratch: Path
) -> tuple[list[float], list[float], str | None]:
    """Run `command` with a new empty cache folder (cold), then again with it (warm).

    Both recur's kernel cache and numba's are pointed at the new folder, so that a cold
    run compiles from scratch whatever the user's own caches hold.
    """
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(repeats):
        cache = Path(tempfile.mkdtemp(prefix="cache-", dir=scratch))
        env = cache_env(cache)
        for samples in (cold, warm):
            elapsed, error = time_process(command, env)
            if error:
                return [], [], error
            samples.append(elapsed)
        shutil.rmtree(cache, ignore_errors=True)
    return cold, warm, None


def cache_env(folder: Path) -> dict[str, str]:
    """This process's environment with recur's and numba's disk caches in `folder`."""
    (folder / "recur").mkdir(parents=True, exist_ok=True)
    (folder / "numba").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "RECUR_CACHE_DIR": str(folder / "recur"),
        "NUMBA_CACHE_DIR": str(folder / "numba"),
    }


# --- checking -------------------------------------------------------------------------


def difference(reference: Mapping[str, np.ndarray], candidate: Mapping[str, Any]) -> str | None:
    """What differs between two results (None: the same arrays).

    Floats are compared with assert_allclose at rtol 1e-12 (float64), plus an absolute
    tolerance of rtol times the largest magnitude in the array: a different but valid
    order of summation (W @ h) or a libm `sin` one ulp away leaves differences of 1e-16
    on elements near zero, which a relative test alone would call a mismatch.
    """
    if sorted(candidate) != sorted(reference):
        return f"outputs {sorted(candidate)}, expected {sorted(reference)}"
    for name, expected in reference.items():
        actual = np.asarray(candidate[name])
        if actual.shape != expected.shape or actual.dtype != expected.dtype:
            return (f"{name}: {actual.dtype}{list(actual.shape)}, "
                    f"expected {expected.dtype}{list(expected.shape)}")
        try:
            if expected.dtype.name in RTOL:
                rtol = RTOL[expected.dtype.name]
                finite = np.abs(expected[np.isfinite(expected)])
                scale = float(finite.max()) if finite.size else 0.0
                np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)
            else:
                np.testing.assert_array_equal(actual, expected)
        except AssertionError as error:
            lines = [line.strip() for line in str(error).splitlines()
                     if line.strip().startswith(("Mismatched", "Max absolute", "Max relative"))]
            return f"{name}: " + "; ".join(lines)
    return None


# --- the workloads --------------------------------------------------------------------


def make_inputs(folder: Path) -> None:
    """Write the input arrays (W6's W and u) into `folder` with workloads/make_inputs.py."""
    subprocess.run([sys.executable, str(WORKLOADS_DIR / "make_inputs.py")], cwd=folder,
                   check=True, timeout=PROCESS_TIMEOUT_S)


def find_workloads(recur: ModuleType, only: set[str] | None, input_dir: Path) -> list[Workload]:
    """The specs of workloads/ (w1_accumulate.yaml is W1), with their inputs loaded."""
    workloads = []
    for path in sorted(WORKLOADS_DIR.glob("w*.yaml"), key=workload_number):
        prefix, _, rest = path.stem.partition("_")
        name = prefix.upper()
        if only is not None and name not in only:
            continue
        needs = recur.check(recur.load(str(path))).needs_input
        files = {key: input_dir / f"{key}.npy" for key in needs}
        inputs = {key: np.load(file) for key, file in files.items()}
        workloads.append(Workload(name, f"{name} {rest.replace('_', ' ')}", path, inputs, files))
    return workloads


def workload_number(path: Path) -> int:
    """10 for w10_sir.yaml: W10 comes after W9, not after W1."""
    return int(path.stem.partition("_")[0][1:])


def estimates(spec: Any, inputs: Mapping[str, np.ndarray],
              engines: Sequence[str | None]) -> dict[str, float]:
    """The cost model's seconds for each engine's loop (auto: the engine it picks), as
    `recur explain` and `--engine auto` see them; empty on a recur without the model."""
    try:
        from recur.api import prepare
        from recur.engine import registry
    except ImportError:
        return {}
    program = prepare(spec, inputs=inputs).program
    model = registry.estimates(program)
    picked = registry.choose(program).engine.name
    return {engine: model[picked if engine == "auto" else engine].seconds
            for engine in engines if engine is not None and
            (picked if engine == "auto" else engine) in model}


def recur_command() -> list[str]:
    """The `recur` console script of this Python (not a shell shim in front of it)."""
    beside = Path(sys.executable).parent / "recur"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("recur")
    return [found] if found else [sys.executable, "-m", "recur"]


def engine_support(recur: ModuleType, command: Sequence[str]) -> tuple[bool, bool]:
    """Whether `recur.run` takes engine= and whether `recur run` takes --engine.

    The engine choice is newer than the rest of recur; on a version without it the
    benchmark measures the default engine and says so in its column.
    """
    in_api = "engine" in inspect.signature(recur.run).parameters
    helped = subprocess.run([*command, "run", "--help"], capture_output=True, text=True,
                            timeout=PROCESS_TIMEOUT_S, check=False)
    return in_api, "--engine" in helped.stdout


def optional_module(name: str) -> ModuleType | None:
    """A handwritten module, or None when its library (jax) is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# --- one workload ---------------------------------------------------------------------


def measure_in_process(
    workload: Workload, row: Row, recur: ModuleType, engines: Sequence[str | None],
    handwritten: Mapping[str, ModuleType | None], repeats: int,
) -> Mapping[str, np.ndarray] | None:
    """Time recur per engine and the handwritten versions; return recur's reference result.

    The reference is the first engine's result; every other engine and every handwritten
    version must give the same arrays, or it is reported instead of timed.
    """
    spec = recur.load(str(workload.spec_path))
    row.estimate = estimates(spec, workload.inputs, engines)
    reference: Mapping[str, np.ndarray] | None = None
    for engine in engines:
        def call(engine: str | None = engine) -> Any:
            extra = {} if engine is None else {"engine": engine}
            return recur.run(spec, inputs=workload.inputs, **extra)

        try:
            result = call()  # warm-up: compiles the kernel of the compiled engine
        except Exception as error:  # a RecurError, or a bug in a new engine: not fatal here
            first_line = (str(error).splitlines() or [""])[0]
            row.notes.append(f"recur {engine}: {type(error).__name__}: {first_line}")
            continue
        ran = getattr(result, "engine", "?")  # what engine the run used
        label = engine or f"default ({ran})"
        if engine and not ran.startswith(engine):
            row.notes.append(f"recur {engine}: ran the {ran} engine")
        if reference is None:
            reference, reference_label = result, label
        elif problem := difference(reference, result):
            row.notes.append(f"MISMATCH recur {label} vs {reference_label}: {problem}")
            continue
        progress(f"{workload.name} recur {label}")
        row.recur[label] = time_calls(call, repeats)
    if reference is None:
        return None
    for kind, module in handwritten.items():
        if module is None or workload.name not in module.WORKLOADS:
            continue  # not installed, or not written by hand (jax: W8, W9, W11)
        def call_handwritten(module: ModuleType = module) -> Any:
            return module.run(workload.name, workload.inputs)

        result = call_handwritten()  # warm-up: compiles
        if problem := difference(reference, result):
            row.notes.append(f"MISMATCH {kind} vs recur: {problem}")
            continue
        progress(f"{workload.name} {kind}")
        setattr(row, kind, time_calls(call_handwritten, repeats))
    return reference


def measure_processes(
    workload: Workload, row: Row, reference: Mapping[str, np.ndarray], cli_engine: str | None,
    handwritten: Mapping[str, ModuleType | None], repeats: int, scratch: Path,
) -> None:
    """Whole-process times: `recur run`, and the handwritten scripts cold and warm."""
    # An .npy holds one array. recur writes .npz with zipfile, which fails on the null
    # device (it seeks), so a spec with several outputs writes a scratch file instead.
    out = os.devnull if len(reference) == 1 else str(scratch / f"{workload.name}.npz")
    fmt = "npy" if len(reference) == 1 else "npz"
    inputs = [arg for name, file in workload.input_files.items()
              for arg in ("--input", f"{name}={file}")]
    if cli_engine and cli_engine not in row.recur:
        row.notes.append(f"recur run: default engine (--engine {cli_engine} failed in process)")
        cli_engine = None
    engine = ["--engine", cli_engine] if cli_engine else []
    command = [*recur_command(), "run", str(workload.spec_path), "-o", out, "-f", fmt,
               *inputs, *engine]
    progress(f"{workload.name} recur run, whole process")
    row.recur_cold, row.recur_warm, error = cold_and_warm(command, repeats, scratch)
    if error:
        row.notes.append(f"recur run: {error}")
    input_dir = next(iter(workload.input_files.values())).parent if workload.input_files else None
    for kind, module in handwritten.items():
        if module is None or not getattr(row, kind):
            continue  # not installed, or it did not give recur's result
        script = [sys.executable, str(HERE / f"handwritten_{kind}.py"), workload.name]
        if input_dir:
            script += ["--inputs", str(input_dir)]
        progress(f"{workload.name} {kind} script, whole process")
        if kind == "numba":
            row.numba_cold, row.numba_warm, error = cold_and_warm(script, repeats, scratch)
        else:  # jax keeps no compilation cache by default: every run compiles
            runs = [time_process(script, os.environ) for _ in range(repeats)]
            error = next((error for _, error in runs if error), None)
            row.jax_script = [] if error else [elapsed for elapsed, _ in runs]
        if error:
            row.notes.append(f"{kind} script: {error}")


# --- the report -----------------------------------------------------------------------


def median(samples: Sequence[float]) -> float | None:
    return statistics.median(samples) if samples else None


def figure(value: float | None, scale: float = 1.0) -> str:
    """A number with three significant digits (or "-"): 2900, 29.0, 0.290, 0.00290."""
    if value is None:
        return "-"
    value *= scale
    if value == 0:
        return "0"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or not denominator:
        return "-"
    return figure(numerator / denominator)


def table(rows: Sequence[Row], labels: Sequence[str]) -> str:
    """The Markdown table: medians, engine times in ms (each beside the cost model's
    estimate of its loop), whole processes in s."""
    header = ["workload",
              *[f"{kind} {label} ms" for label in labels for kind in ("recur", "est")],
              "numba ms", "jax ms",
              "recur/numba", "recur/jax", "recur run cold s", "recur run warm s",
              "numba script cold s", "numba script warm s", "jax script s"]
    lines = []
    for row in rows:
        engines = [median(row.recur.get(label, [])) for label in labels]
        best = min((value for value in engines if value is not None), default=None)
        numba, jax = median(row.numba), median(row.jax)
        lines.append([
            row.title,
            *[figure(value, 1e3) for label, measured in zip(labels, engines, strict=True)
              for value in (measured, row.estimate.get(label))],
            figure(numba, 1e3), figure(jax, 1e3), ratio(best, numba), ratio(best, jax),
            *[figure(median(samples)) for samples in (
                row.recur_cold, row.recur_warm, row.numba_cold, row.numba_warm,
                row.jax_script)],
        ])
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]

    def render(cells: Sequence[str]) -> str:
        padded = [cell.ljust(w) if i == 0 else cell.rjust(w)
                  for i, (cell, w) in enumerate(zip(cells, widths, strict=True))]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return "\n".join([render(header), rule, *(render(cells) for cells in lines)])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(module: ModuleType | None) -> str:
    return getattr(module, "__version__", "?") if module is not None else "not installed"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- main -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--only", help="comma-separated workloads, e.g. W1,W3")
    parser.add_argument("--engines", default="interp,compiled",
                        help="comma-separated recur engines (auto, interp, compiled)")
    parser.add_argument("--no-cli", action="store_true", help="skip the whole-process runs")
    parser.add_argument("--json", type=Path, help="also write every sample here")
    args = parser.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if unknown := [e for e in args.engines if e not in ENGINES]:
        parser.error(f"unknown engine {unknown[0]!r}: choose from {', '.join(ENGINES)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.only = {w.strip().upper() for w in args.only.split(",")} if args.only else None
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="recur-bench-") as temporary:
        scratch = Path(temporary)
        # Before numba or recur is imported: their in-process caches go to the scratch
        # folder, so a run neither reads nor fills the user's caches.
        os.environ.update(cache_env(scratch / "in-process"))
        if str(HERE) not in sys.path:
            sys.path.insert(0, str(HERE))  # the handwritten modules import `common`
        import numba

        import recur

        handwritten = {"numba": importlib.import_module("handwritten_numba"),
                       "jax": optional_module("handwritten_jax")}
        jax = sys.modules.get("jax")

        input_dir = scratch / "inputs"
        input_dir.mkdir()
        make_inputs(input_dir)
        workloads = find_workloads(recur, args.only, input_dir)
        if args.only and (missing := args.only - {w.name for w in workloads}):
            sys.exit(f"cpu.py: no workload {', '.join(sorted(missing))} in {WORKLOADS_DIR.name}/")

        command = recur_command()
        api_engine, cli_engine_flag = engine_support(recur, command)
        engines: list[str | None] = list(args.engines) if api_engine else [None]
        cli_engine = "compiled" if cli_engine_flag and "compiled" in args.engines else None

        baseline: dict[str, list[float]] = {}
        if not args.no_cli:
            # Untimed: bring numpy, numba and jax into the page cache for every process.
            modules = "numpy, numba" + (", jax" if jax else "")
            time_process([sys.executable, "-c", f"import {modules}"], os.environ)
            progress("baseline: python -c 'import numpy', recur run fibonacci")
            fibonacci = [*command, "run", str(FIBONACCI), "--steps", "10", "-o", os.devnull,
                         "-f", "npy"]
            for key, process in (("import numpy", [sys.executable, "-c", "import numpy"]),
                                 ("recur fibonacci", fibonacci)):
                time_process(process, os.environ)
                baseline[key] = [time_process(process, os.environ)[0]
                                 for _ in range(args.repeats)]

        rows = []
        for workload in workloads:
            row = Row(workload.title)
            reference = measure_in_process(workload, row, recur, engines, handwritten,
                                           args.repeats)
            if reference is not None and not args.no_cli:
                measure_processes(workload, row, reference, cli_engine, handwritten,
                                  args.repeats, scratch)
            rows.append(row)
    elapsed = time.perf_counter() - started

    labels = list(dict.fromkeys(label for row in rows for label in row.recur))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = {
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": version(numba),
        "jax": version(jax),
        "recur": f"{version(recur)} from {Path(recur.__file__).parent}",
        "recur engines": ("engine= " + ",".join(args.engines)) if api_engine
        else "recur.run has no engine= yet: its default engine ran",
        "recur run": ("--engine " + cli_engine) if cli_engine else "default engine",
        "repeats": str(args.repeats),
        "load average at the end": f"{load:.2f}",
        "total time": f"{elapsed:.0f} s",
    }
    print("# recur CPU benchmark\n")
    for key, value in header.items():
        print(f"- {key}: {value}")
    if baseline:
        numpy_s, fib_s = median(baseline["import numpy"]), median(baseline["recur fibonacci"])
        print(f"- `python -c 'import numpy'`: {figure(numpy_s)} s; "
              f"`recur run specs/fibonacci.yaml --steps 10`: {figure(fib_s)} s "
              f"= {ratio(fib_s, numpy_s)}x numpy's import (target: at most 2x)")
    print()
    print(table(rows, labels))
    notes = [f"- {row.title.split()[0]}: {note}" for row in rows for note in row.notes]
    if notes:
        print("\nNotes:\n" + "\n".join(notes))
    if args.json:
        args.json.write_text(json.dumps(
            {"header": header, "baseline_s": baseline, "workloads": [asdict(r) for r in rows]},
            indent=1))


if __name__ == "__main__":
    main()
