"""GPU benchmark: recur's CUDA engines on G1-G3 and the example specs.

For each workload it measures, as medians over --repeats runs after a warm-up:

- recur's engine time in process (an engine's `run`: the loop, results left on the
  GPU), for the engine `auto` picks and the others worth showing;
- the floor: the bytes the run must write (and read) over the card's copy bandwidth,
  measured here with a device-to-device copy (bytes read plus bytes written);
- jax.lax.scan (and lax.associative_scan for G2) on the same card, when JAX is
  installed, in a child process so that JAX's and CuPy's memory pools do not meet;
- whole processes through the CLI, `recur run ... --device cuda -o FILE`, with an empty
  and then a filled CuPy kernel cache.

Each result is first checked: G1 bit for bit against a NumPy loop over some lanes, G2
against the sequential loop (the scan's error over the largest state), G3 against
NumPy in float64. It prints Markdown tables to stdout (progress to stderr).

    python benchmarks/gpu.py [--repeats 5] [--no-cli] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from cpu import figure, median, recur_command, time_process

HERE = Path(__file__).resolve().parent
WORKLOADS = HERE / "workloads"
SPECS = HERE.parent / "specs"
G1_CHECKED_LANES = 4096
JAX_TIMEOUT_S = 150


def progress(message: str) -> None:
    print(f"[gpu.py] {message}", file=sys.stderr, flush=True)


def make_inputs(folder: Path) -> dict[str, dict[str, Path]]:
    """The input files of G2 and G3, by workload and name."""
    b = np.random.default_rng(1).standard_normal(10_000_000)
    rng = np.random.default_rng(3)
    weights = (rng.standard_normal((256, 256)) * (0.5 / 16)).astype(np.float32)
    drive = (rng.standard_normal((1000, 256)) * 0.5).astype(np.float32)
    files = {"G2": {"b": folder / "b.npy"}, "G3": {"W": folder / "W.npy", "u": folder / "u.npy"}}
    np.save(files["G2"]["b"], b)
    np.save(files["G3"]["W"], weights)
    np.save(files["G3"]["u"], drive)
    return files


def bandwidths(cupy: Any, repeats: int) -> tuple[float, float]:
    """Bytes per second of a device-to-device copy (counting bytes read and written) and
    of filling memory (bytes written only): the floors' two yardsticks."""
    source = cupy.ones(1 << 29, dtype=cupy.float32)  # 2 GiB
    target = cupy.empty_like(source)
    rates = []
    for work, arguments, moved in ((cupy.copyto, (target, source), 2 << 31),
                                   (target.fill, (0.5,), 1 << 31)):
        samples = []
        for _ in range(repeats + 1):
            start, stop = cupy.cuda.Event(), cupy.cuda.Event()
            start.record()
            work(*arguments)
            stop.record()
            stop.synchronize()
            samples.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
        rates.append(moved / float(np.median(samples[1:])))
    del source, target, work, arguments
    cupy.get_default_memory_pool().free_all_blocks()
    return rates[0], rates[1]


def time_launch(recur_modules: Any, path: Path, inputs: dict[str, Any], engine: str,
                repeats: int) -> tuple[list[float], list[float], Any, str]:
    """Seconds of an engine's `run` per run after a warm-up, by the host's clock and by
    the GPU's events (the host's includes Python and launch overheads); the program
    and the buffers of the last run; the engine used."""
    import cupy

    _recur, api, registry = recur_modules
    from recur.engine.plan import allocate

    spec = _recur.load(path)
    compiled = api.prepare(spec, device="cuda", inputs=inputs)
    program = compiled.program
    choice = registry.choose(program, engine)
    wall, device = [], []
    for _ in range(repeats + 1):
        buffers = allocate(program, compiled.backend)
        cupy.cuda.Device().synchronize()
        begin, end = cupy.cuda.Event(), cupy.cuda.Event()
        start = time.perf_counter()
        begin.record()
        choice.engine.run(program, buffers)
        end.record()
        end.synchronize()
        wall.append(time.perf_counter() - start)
        device.append(cupy.cuda.get_elapsed_time(begin, end) / 1e3)
    return wall[1:], device[1:], (program, buffers), choice.engine.name


def variants(modules: Any, g1: Path, g2: tuple[Path, dict[str, Any]], g3: Path,
             g3_inputs: dict[str, Any], repeats: int) -> list[dict[str, Any]]:
    """The kernels' tuning constants, measured: the lane kernel's block size on G1; the
    scan's chunk on G2; rows per block and unrolling of the matrix kernel on G3."""
    import cupy

    from recur.engine.cuda import generate as cudagen
    from recur.engine.cuda import launch, scan

    defaults = (launch.BLOCK, cudagen.ROWS_PER_BLOCK, cudagen.UNROLL, scan.CHUNK)
    owners = {"BLOCK": launch, "CHUNK": scan}
    results = []
    settings = [("G1", g1, {}, {"BLOCK": block}) for block in (128, 256, 512)]
    settings += [("G3", g3, g3_inputs, {"ROWS_PER_BLOCK": rows, "UNROLL": unroll})
                 for rows, unroll in ((8, 1), (8, 8), (4, 8), (16, 8), (8, 16), (4, 16),
                                      (2, 8))]
    settings += [("G2", g2[0], g2[1], {"CHUNK": chunk}) for chunk in (16, 32, 64, 128, 256)]
    for name, path, inputs, constants in settings:
        for key, value in constants.items():
            setattr(owners.get(key, cudagen), key, value)
        engine = "scan" if name == "G2" else "compiled"
        try:
            wall, device, compiled, _ = time_launch(modules, path, inputs, engine, repeats)
            results.append({"workload": name, **constants, "ms": 1e3 * median(wall),
                            "gpu_ms": 1e3 * median(device)})
            del compiled
        except Exception as error:
            results.append({"workload": name, **constants, "error": str(error)})
        progress(f"  {results[-1]}")
        launch.BLOCK, cudagen.ROWS_PER_BLOCK, cudagen.UNROLL, scan.CHUNK = defaults
        cupy.get_default_memory_pool().free_all_blocks()
    return results


def _first_history(ran: Any) -> Any:
    """The history of the first output after the last run: `ran` is (program, buffers)."""
    program, buffers = ran
    return buffers.histories[program.outputs[0].name]


def states(ran: Any) -> np.ndarray:
    """The trajectory of the first output of the last run, copied to the host."""
    history = _first_history(ran)
    return history.rows[history.depth:].get()


def g1_check(compiled: Any) -> str:
    """The first lanes, bit for bit against a NumPy loop (r is float64: NumPy computes
    each step in float64 and stores it as float32)."""
    r = np.linspace(2.5, 4.0, 1_000_000)[:G1_CHECKED_LANES]
    x = np.full(G1_CHECKED_LANES, 0.5, dtype=np.float32)
    history = _first_history(compiled)
    got = history.rows[history.depth:, :G1_CHECKED_LANES].get()
    for t in range(got.shape[0]):
        x = (r * x * (1 - x)).astype(np.float32)
        if not np.array_equal(got[t], x):
            return f"differs from NumPy at t={t}"
    return f"bit-identical to NumPy on {G1_CHECKED_LANES} lanes"


def g2_check(compiled: Any, b: np.ndarray) -> str:
    """The scan against the sequential loop (lfilter: y = b + a*y in order), as the
    largest error over the largest state."""
    from scipy.signal import lfilter

    got = states(compiled).reshape(-1)
    loop = lfilter([1.0], [1.0, -0.999999], b)
    error = float(np.max(np.abs(got - loop)) / np.max(np.abs(loop)))
    return f"max abs(scan - loop) / max abs(y) = {error:.1e}"


def g3_check(compiled: Any, files: dict[str, Path], steps: int = 50) -> str:
    weights = np.load(files["W"]).astype(np.float64)
    drive = np.load(files["u"]).astype(np.float64)
    h = np.zeros((1024, 256))
    got = states(compiled)
    worst = 0.0
    for t in range(steps):
        h = np.tanh(h @ weights + drive[t])
        worst = max(worst, float(np.max(np.abs(got[t] - h))))
    return f"max |recur - float64 NumPy| over {steps} steps = {worst:.1e}"


def cli_runs(path: Path, inputs: dict[str, Path], scratch: Path,
             extra: tuple[str, ...] = ()) -> tuple[float | None, float | None, str]:
    """Whole-process seconds with an empty, then a filled CuPy kernel cache."""
    cache = Path(tempfile.mkdtemp(prefix="cupy-cache-", dir=scratch))
    env = {**os.environ, "CUPY_CACHE_DIR": str(cache)}
    command = [*recur_command(), "run", str(path), "--device", "cuda", "-q",
               "-o", str(scratch / "out.npz"), *extra]
    for name, file in inputs.items():
        command += ["--input", f"{name}={file}"]
    times = []
    for _ in range(2):
        elapsed, error = time_process(command, env)
        if error:
            return None, None, error
        times.append(elapsed)
    return times[0], times[1], ""


def jax_part(files: dict[str, dict[str, Path]], repeats: int) -> dict[str, float]:
    """JAX's medians in seconds (run in a child process)."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_default_matmul_precision", "highest")
    jax.config.update("jax_enable_x64", True)

    def timed(function: Callable[[], Any]) -> float:
        jax.block_until_ready(function())
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(function())
            samples.append(time.perf_counter() - start)
        return float(np.median(samples))

    results = {"jax": jax.__version__, "jax_device": str(jax.devices()[0])}
    r = jnp.linspace(2.5, 4.0, 1_000_000, dtype=jnp.float32)

    @jax.jit
    def logistic(x0: Any) -> Any:
        def step(x: Any, _: Any) -> tuple[Any, Any]:
            x = r * x * (1 - x)
            return x, x
        return jax.lax.scan(step, x0, None, length=1000)[1]

    x0 = jnp.full(1_000_000, 0.5, dtype=jnp.float32)
    results["G1"] = timed(lambda: logistic(x0))

    b = jnp.asarray(np.load(files["G2"]["b"]))

    @jax.jit
    def linear_parallel(b: Any) -> Any:
        def combine(first: Any, second: Any) -> Any:
            return first[0] * second[0], second[0] * first[1] + second[1]
        a = jnp.full_like(b, 0.999999)
        return jax.lax.associative_scan(combine, (a, b))[1]

    # (a sequential lax.scan over 10^7 steps takes minutes on a GPU: not measured)
    results["G2"] = timed(lambda: linear_parallel(b))

    weights = jnp.asarray(np.load(files["G3"]["W"]))
    drive = jnp.asarray(np.load(files["G3"]["u"]))

    @jax.jit
    def rnn(h0: Any) -> Any:
        def step(h: Any, u: Any) -> tuple[Any, Any]:
            h = jnp.tanh(h @ weights + u)
            return h, h
        return jax.lax.scan(step, h0, drive)[1]

    results["G3"] = timed(lambda: rnn(jnp.zeros((1024, 256), dtype=jnp.float32)))
    return results


def run_jax(files: dict[str, dict[str, Path]], repeats: int, scratch: Path) -> dict[str, Any]:
    listing = scratch / "files.json"
    names = {key: {name: str(path) for name, path in paths.items()}
             for key, paths in files.items()}
    listing.write_text(json.dumps(names))
    done = subprocess.run([sys.executable, __file__, "--jax-part", str(listing),
                           "--repeats", str(repeats)], capture_output=True, text=True,
                          timeout=JAX_TIMEOUT_S, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no message"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-cli", action="store_true")
    parser.add_argument("--variants", action="store_true",
                        help="also time the kernels' tuning constants (block sizes, ...)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--jax-part", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jax_part:
        listing = json.loads(args.jax_part.read_text())
        files = {k: {n: Path(p) for n, p in v.items()} for k, v in listing.items()}
        print(json.dumps(jax_part(files, args.repeats)))
        return

    import cupy

    import recur
    from recur import api
    from recur.engine import registry

    modules = (recur, api, registry)
    report: dict[str, Any] = {
        "device": cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(),
        "cupy": cupy.__version__, "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "numpy": np.__version__, "python": platform.python_version(), "rows": {},
    }
    scratch = Path(tempfile.mkdtemp(prefix="recur-gpu-bench-"))
    files = make_inputs(scratch)
    bandwidth, fill = bandwidths(cupy, args.repeats)
    report["copy_bandwidth_TBps"] = bandwidth / 1e12
    report["fill_bandwidth_TBps"] = fill / 1e12
    progress(f"copy bandwidth {bandwidth / 1e12:.2f} TB/s on {report['device']}")
    rows = report["rows"]

    def measure(label: str, path: Path, inputs: dict[str, Any], engine: str,
                floor_bytes: float, check: Callable[[Any], str] | None,
                repeats: int = args.repeats) -> None:
        progress(f"{label} ...")
        try:
            samples, device, compiled, used = time_launch(modules, path, inputs, engine,
                                                          repeats)
            rows[label] = {"engine": used, "ms": 1e3 * median(samples),
                           "gpu_ms": 1e3 * median(device),
                           "floor_ms": 1e3 * floor_bytes / bandwidth if floor_bytes else None,
                           "check": check(compiled) if check else ""}
            del compiled
        except Exception as error:  # one failed workload must not hide the others
            traceback.print_exc()
            rows[label] = {"error": f"{type(error).__name__}: {error}"}
        progress(f"  {rows[label]}")
        cupy.get_default_memory_pool().free_all_blocks()

    g1 = WORKLOADS / "g1_logistic_gpu.yaml"
    measure("G1 logistic sweep 1e6 lanes x 1000", g1, {}, "auto", 4e9, g1_check)
    g2 = WORKLOADS / "g2_linear_long.yaml"
    b = np.load(files["G2"]["b"])
    measure("G2 linear 1e7 steps, scan", g2, {"b": b}, "auto", 2 * b.nbytes,
            lambda compiled: g2_check(compiled, b))
    measure("G2 linear 1e7 steps, fused (one thread)", g2, {"b": b}, "compiled", 0, None, 1)
    g3 = WORKLOADS / "g3_rnn_lanes.yaml"
    g3_inputs = {name: np.load(file) for name, file in files["G3"].items()}
    measure("G3 RNN 1024 lanes x 256, 1000 steps", g3, g3_inputs, "auto", 1024 * 256 * 4 * 1000,
            lambda compiled: g3_check(compiled, files["G3"]))
    measure("G3 RNN, interpreter (cuBLAS per step)", g3, g3_inputs, "interp", 0, None, 1)
    for spec in sorted(SPECS.glob("*.yaml")):
        if "input" not in spec.read_text():
            measure(f"example {spec.stem}", spec, {}, "auto", 0, None)

    if args.variants:
        progress("variants ...")
        report["variants"] = variants(modules, g1, (g2, {"b": b}), g3, g3_inputs,
                                      args.repeats)
    if not args.no_cli:
        cli = {"G1": (g1, {}, ("--last",)), "G2": (g2, files["G2"], ()),
               "G3": (g3, files["G3"], ()), "fibonacci": (SPECS / "fibonacci.yaml", {}, ())}
        report["cli"] = {}
        for name, (path, inputs, extra) in cli.items():
            progress(f"CLI {name} ...")
            cold, warm, error = cli_runs(path, inputs, scratch, extra)
            report["cli"][name] = {"cold_s": cold, "warm_s": warm, "error": error}
            progress(f"  {report['cli'][name]}")
    progress("jax ...")
    report["jax"] = run_jax(files, args.repeats, scratch)
    progress(f"  {report['jax']}")
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def render(report: dict[str, Any]) -> str:
    jax = report.get("jax", {})
    lines = [f"{report['device']}, CuPy {report['cupy']}, CUDA runtime "
             f"{report['cuda_runtime']}, NumPy {report['numpy']}, JAX {jax.get('jax', '-')}; "
             f"copy bandwidth {report['copy_bandwidth_TBps']:.2f} TB/s (read + write), fill "
             f"{report.get('fill_bandwidth_TBps', 0):.2f} TB/s (write only)", "",
             "| workload | engine | recur ms | GPU ms | floor ms | x floor | jax ms | "
             "jax / recur | check |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, row in report["rows"].items():
        if "error" in row:
            lines.append(f"| {label} | error: {row['error']} | | | | | | | |")
            continue
        key = label.split()[0]
        reference = jax.get(key) if key.startswith("G") and "fused" not in label else None
        x_floor = row["gpu_ms"] / row["floor_ms"] if row.get("floor_ms") else None
        lines.append(
            f"| {label} | {row['engine']} | {figure(row['ms'])} | {figure(row.get('gpu_ms'))} "
            f"| {figure(row.get('floor_ms'))} "
            f"| {figure(x_floor)} | {figure(reference, 1e3)} | "
            f"{figure(reference * 1e3 / row['ms']) if reference else '-'} | {row['check']} |")
    if report.get("variants"):
        lines += ["", "| variant | host ms | GPU ms |", "| --- | --- | --- |"]
        for row in report["variants"]:
            setting = ", ".join(f"{k}={v}" for k, v in row.items()
                                if k not in ("ms", "gpu_ms", "error"))
            lines.append(f"| {setting} | {figure(row.get('ms'))} | "
                         f"{figure(row.get('gpu_ms'))} {row.get('error', '')} |")
    if "error" in jax:
        lines.append(f"\njax: {jax['error']}")
    if report.get("cli"):
        lines += ["", "| through the CLI | cold cache s | warm cache s | error |",
                  "| --- | --- | --- | --- |"]
        for name, row in report["cli"].items():
            lines.append(f"| {name} | {figure(row['cold_s'])} | {figure(row['warm_s'])} | "
                         f"{row['error'] or ''} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
