"""The CUDA engines (fused kernel, parallel scan, interpreter on CuPy) agree with the CPU.

Every test runs twice: `emulated` builds the generated CUDA source with the host's C++
compiler and runs it with NumPy standing in for CuPy (tests/support/cuda_emulator.py), so CI
checks the code generation, the launches and the dispatch without a GPU; `gpu` runs the
same test on CuPy and a CUDA device (marked `gpu`, skipped without them). Integers must
agree exactly; floats bit for bit where only `+ - * /`, `sqrt` and comparisons are
involved (the kernels are built with `--fmad=false`), else within `GPU_RTOL`; the scan
within `SCAN_RTOL` of the largest state.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy
import pytest
from click.testing import CliRunner
from cuda_emulator import EmulatedCuda, compiler
from hypothesis import HealthCheck, assume, given, settings
from numpy.testing import assert_allclose, assert_array_equal
from test_compiled import DEEP_TAPS_SPEC
from test_engine import OVERFLOWS, Case, _check_case, cases
from test_random import SWEEP as RANDOM_SWEEP

import recur
from recur import api
from recur.cli.main import cli
from recur.diagnostics import CompileError
from recur.engine import registry
from recur.engine.c.native import EngineNote
from recur.engine.cuda import engine as cuda_engine
from recur.engine.cuda import generate as cudagen
from recur.engine.cuda import scan
from recur.engine.cuda.launch import CupyLauncher
from recur.engine.plan import allocate, collect, run_on

ROOT = Path(__file__).resolve().parents[2]
KERNELS = Path(__file__).resolve().parents[1] / "golden_kernels"
SPECS = sorted(path.stem for path in (ROOT / "specs").glob("*.yaml"))
FUSED_SPECS = ["accumulate", "collatz", "fibonacci", "linear_filter", "logistic_sweep",
               "fit_decay", "lotka_volterra", "monte_carlo_pi", "moving_average", "newton_sqrt",
               "ornstein_uhlenbeck", "random_walk", "rnn", "square_sum", "taylor_exp"]
GPU_RTOL = {"float64": 1e-12, "float32": 1e-5}  # CUDA's libm and cuBLAS vs NumPy's
SCAN_RTOL = {"float64": 1e-12, "float32": 1e-5}  # of the largest |state|, measured below


def _gpu_available() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return bool(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no driver, no device: CuPy raises its own errors
        return False


@pytest.fixture(params=["emulated", pytest.param("gpu", marks=pytest.mark.gpu)])
def where(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
          tmp_path_factory: pytest.TempPathFactory) -> str:
    """`--device cuda` runs emulated on the host, or on a real GPU."""
    if request.param == "gpu":
        if not _gpu_available():
            pytest.skip("needs CuPy and a CUDA device")
        return "gpu"
    if compiler() is None:
        pytest.skip("needs a C++ compiler to emulate CUDA kernels")
    backend = EmulatedCuda(tmp_path_factory.mktemp("emulated"))
    real = api.get_backend
    monkeypatch.setattr(api, "get_backend",
                        lambda device: backend if device == "cuda" else real(device))
    return "emulated"


def agree(cpu: recur.Result, cuda: recur.Result, exact: bool) -> None:
    assert list(cpu) == list(cuda)
    assert (cpu.steps_run, cpu.stopped_by) == (cuda.steps_run, cuda.stopped_by)
    for name in cpu:
        assert cuda[name].dtype == cpu[name].dtype, name
        if exact or cpu[name].dtype.kind not in "fc":
            assert_array_equal(cuda[name], cpu[name], err_msg=name, strict=True)
        else:
            assert_allclose(cuda[name], cpu[name], rtol=GPU_RTOL[cpu[name].dtype.name],
                            atol=0, err_msg=name)


def both(text: str, where: str, exact: bool = True, **kwargs: Any) -> recur.Result:
    spec = recur.load(text)
    cuda = recur.run(spec, device="cuda", **kwargs)
    agree(recur.run(spec, engine="interp", **kwargs), cuda, exact or where == "emulated")
    return cuda


@pytest.mark.parametrize("name", SPECS)
def test_every_example_spec_runs_on_cuda_as_on_the_cpu(name: str, where: str) -> None:
    spec = recur.load(ROOT / "specs" / f"{name}.yaml")
    cuda = recur.run(spec, device="cuda")
    assert cuda.device == "cuda"
    cpu = recur.run(spec, engine="interp")
    if cuda.engine == "scan":
        for output in cpu:
            scale = float(numpy.abs(cpu[output]).max())
            assert_allclose(cuda[output], cpu[output], rtol=0,
                            atol=SCAN_RTOL[cpu[output].dtype.name] * scale)
        return
    expected = "compiled" if name in FUSED_SPECS else "interp"
    program = api.prepare(spec, device="cuda").program
    assert cuda.engine == expected, registry.choose(program).reason
    # NumPy's matrix products sum in BLAS's order, the kernels in index order
    agree(cpu, cuda, exact=where == "emulated" and name != "rnn")


def _cuda_case(case: Case, where: str, engine: str) -> None:
    spec = recur.load(case.yaml)
    try:
        prepared = api.prepare(spec, device="cuda", **{k: v for k, v in case.kwargs.items()
                                                      if k != "device"})
        registry.choose(prepared.program, engine)
    except recur.RecurError as error:
        assume("cannot run this spec" not in error.message)
    _check_case(case, device="cuda", engine=engine)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(cases())
def test_random_float_specs_agree_on_the_fused_kernel(where: str, case: Case) -> None:
    _cuda_case(case, where, "compiled")


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(cases(ints=True))
def test_random_integer_specs_agree_on_the_fused_kernel(where: str, case: Case) -> None:
    _cuda_case(case, where, "compiled")


@settings(max_examples=10, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(cases())
def test_random_specs_agree_on_the_cuda_interpreter(where: str, case: Case) -> None:
    _cuda_case(case, where, "interp")


@pytest.mark.parametrize("dtype", ["int64", "int32"])
@pytest.mark.parametrize("op", list(OVERFLOWS))
def test_integer_faults_are_reported_as_on_the_cpu(op: str, dtype: str, where: str) -> None:
    body, _ = OVERFLOWS[op](dtype)
    spec = recur.load(f"steps: 60\ndtype: {dtype}\noutputs:\n{body}")
    messages = []
    for device in ("cpu", "cuda"):
        with pytest.raises(recur.RecurError) as error:
            recur.run(spec, device=device, engine="interp" if device == "cpu" else "compiled")
        assert error.value.exit_code == 1
        messages.append(error.value.message)
    assert messages[0] == messages[1]


def test_check_stops_at_the_same_first_non_finite_value(where: str) -> None:
    spec = recur.load("steps: 30\noutputs:\n  x:\n    initial: [1.0, 2.0]\n"
                      "    step: x[t-1] * 1e40\n")
    messages = []
    for device in ("cpu", "cuda"):
        with pytest.raises(recur.RecurError) as error:
            recur.run(spec, device=device, check=True)
        messages.append(error.value.message)
    assert messages[0] == messages[1] and "t=7" in messages[0]


def test_until_on_the_first_step_and_later(where: str) -> None:
    first = both("steps: 10\noutputs:\n  x:\n    initial: 5\n    step: x[t-1] * 2\n"
                 "until: x[t] > 0\n", where)
    assert first.steps_run == 1 and first.engine == "compiled"
    later = both("steps: 100\nparams:\n  r: linspace(1, 2, 5)\noutputs:\n  n:\n    initial: 0\n"
                 "    step: n[t-1] + 1\n    keep: all\n  x:\n    initial: 0.5\n"
                 "    step: r * x[t-1] * (1 - x[t-1])\nuntil: n[t] >= 17\n", where)
    assert later.steps_run == 17 and later.stopped_by == "until" and later.engine == "compiled"


def test_deep_gapped_taps_over_lanes_reversed_and_kept_last(where: str) -> None:
    assert both(DEEP_TAPS_SPEC, where).engine == "compiled"


def test_launches_in_chunks_give_the_same_states(where: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress splits the loop into launches; taps and rings carry across them."""
    from recur.engine.cuda import launch as cuda

    monkeypatch.setattr(cuda, "CHUNK_LANE_STEPS", 12)  # 3 lanes: 4 steps a launch
    text = ("steps: 23\nparams:\n  r: linspace(2.5, 4.0, 3)\noutputs:\n  x:\n"
            "    initial: [0.2, 0.3]\n    step: r * x[t-1] * (1 - x[t-2])\n    keep: last\n"
            "  n:\n    initial: 1\n    step: n[t-1] * 2 + 1\n")
    seen = []
    spec = recur.load(text)
    cuda_result = recur.run(spec, device="cuda", progress=lambda done, total: seen.append(done))
    agree(recur.run(spec, engine="interp"), cuda_result, exact=True)
    assert seen == [4, 8, 12, 16, 20, 23]


def test_zero_steps_run_nothing(where: str) -> None:
    result = both("outputs:\n  x:\n    initial: 1.5\n    step: x[t-1] + 1\n", where, steps=0)
    assert result.engine == "interp"


def test_a_matrix_step_sums_as_the_c_engine_does(where: str) -> None:
    """`W @ h[t-1]`: each column summed over k in order, as the CPU's compiled engine:
    bit for bit on the emulator without the tanh (CUDA's own tanh, or the C library's on
    the emulator, and the C kernel's, recur's own, are an ulp or two apart)."""
    text = (ROOT / "specs" / "rnn.yaml").read_text()
    step = "tanh(W @ h[t-1] + v * x + b)"
    for linear in (False, True):
        spec = recur.load(text.replace(step, step[5:-1]) if linear else text)
        cuda_result = recur.run(spec, device="cuda", engine="compiled")
        assert cuda_result.engine == "compiled"
        agree(recur.run(spec, engine="compiled"), cuda_result,
              exact=where == "emulated" and linear)


@pytest.mark.parametrize(("rows", "keep", "check"), [(21, "all", False), (3, "last", True)])
def test_a_matrix_step_over_rows_matches_a_loop_in_index_order(
        rows: int, keep: str, check: bool, where: str) -> None:
    """State rows times a matrix, then element-wise work: bit for bit a NumPy loop that
    sums the product in index order (rows not a multiple of a block's, a ring, --check)."""
    width, steps = 40, 9
    rng = numpy.random.default_rng(rows)
    weights = (rng.standard_normal((width, width)) * 0.3).astype(numpy.float32)
    drive = rng.standard_normal((steps, width)).astype(numpy.float32)
    text = (f"dtype: float32\nparams:\n  W: input\nsequences:\n  u: input\noutputs:\n"
            f"  h:\n    initial: ones([{rows}, {width}]) * 0.25\n"
            f"    step: 0.5 * (h[t-1] @ W + u) - h[t-1] * 0.125\n    keep: {keep}\n")
    result = recur.run(recur.load(text), device="cuda", check=check,
                       inputs={"W": weights, "u": drive})
    assert result.engine == "compiled"
    h = numpy.full((rows, width), 0.25, dtype=numpy.float32)
    states = []
    for t in range(steps):
        product = numpy.zeros((rows, width), dtype=numpy.float32)
        for k in range(width):
            product = product + h[:, k:k + 1] * weights[k]
        h = numpy.float32(0.5) * (product + drive[t]) - h * numpy.float32(0.125)
        states.append(h)
    assert_array_equal(result["h"], numpy.stack(states) if keep == "all" else h, strict=True)


def test_steps_that_mix_lanes_otherwise_run_on_the_cuda_interpreter(where: str) -> None:
    text = ("outputs:\n  h:\n    initial: [1.0, 3.0]\n    step: h[t-1] / sum(h[t-1]) + 1\n"
            "steps: 5\n")
    spec = recur.load(text)
    choice = registry.choose(api.prepare(spec, device="cuda").program)
    assert choice.engine.name == "interp" and "sum(), which mixes lanes" in choice.reason
    assert both(text, where, exact=False).engine == "interp"


# The parallel scan


AFFINE_FORMS = ["a * y[t-1] + b", "b + y[t-1] * a", "y[t-1] - b", "b - a * y[t-1]",
                "a * y[t-1]", "y[t-1] + b"]


def _affine_spec(form: str, dtype: str, lanes: int, keep: str) -> str:
    # a per lane in float64; a weak Python float otherwise, which float32 keeps
    a = f"linspace(0.9, 0.9999, {lanes})" if lanes > 1 and dtype == "float64" else "0.999"
    initial = f"zeros({lanes})" if lanes > 1 else "1.0"
    return (f"params:\n  a: {a}\nsequences:\n  b: input\noutputs:\n  y:\n    dtype: {dtype}\n"
            f"    initial: {initial}\n    step: {form}\n    keep: {keep}\n")


@pytest.mark.parametrize("form", AFFINE_FORMS)
@pytest.mark.parametrize(("dtype", "lanes", "keep"), [
    ("float64", 1, "all"), ("float32", 1, "all"), ("float64", 3, "last"),
    ("float32", 5, "all")])
def test_the_scan_agrees_with_the_loop(form: str, dtype: str, lanes: int, keep: str,
                                       where: str) -> None:
    steps = 150_000 if lanes == 1 else 20_000  # several levels of chunks
    shape = (steps + 1,) if lanes == 1 else (steps + 1, lanes)
    b = numpy.random.default_rng(lanes).standard_normal(shape).astype(dtype)
    spec = recur.load(_affine_spec(form, dtype, lanes, keep))
    loop = recur.run(spec, engine="interp", inputs={"b": b})
    scanned = recur.run(spec, device="cuda", engine="scan", inputs={"b": b})
    assert scanned.engine == "scan" and scanned.steps_run == loop.steps_run
    got, want = scanned["y"], loop["y"]
    assert got.dtype == want.dtype and got.shape == want.shape
    scale = float(numpy.abs(want).max())
    assert_allclose(got, want, rtol=0, atol=SCAN_RTOL[dtype] * scale)


def test_auto_takes_the_scan_for_long_runs_of_few_lanes(where: str) -> None:
    text = _affine_spec("a * y[t-1] + b", "float64", 1, "all")
    spec = recur.load(text)
    long_run = api.prepare(spec, device="cuda",
                           inputs={"b": numpy.ones(cuda_engine.SCAN_MIN_STEPS)})
    choice = registry.choose(long_run.program)
    assert choice.engine.name == "scan" and "affine" in choice.reason
    short = api.prepare(spec, device="cuda", inputs={"b": numpy.ones(100)})
    assert registry.choose(short.program).engine.name == "compiled"


@pytest.mark.parametrize(("step", "why"), [
    ("y[t-1] * y[t-1] + b", "not a * y[t-1] + b"),
    ("a * y[t-2] + b", "one tap"),
    ("sin(y[t-1]) + b", "not a * y[t-1] + b"),
])
def test_the_scan_refuses_steps_that_are_not_affine(step: str, why: str, where: str) -> None:
    text = ("params:\n  a: 0.5\nsequences:\n  b: input\noutputs:\n  y:\n"
            f"    initial: [1.0, 2.0]\n    step: {step}\n")
    with pytest.raises(recur.RecurError) as error:
        recur.run(recur.load(text), device="cuda", engine="scan", inputs={"b": numpy.ones(9)})
    assert error.value.exit_code == 2 and why in error.value.message


def test_scan_is_for_cuda_only() -> None:
    spec = recur.load(_affine_spec("a * y[t-1] + b", "float64", 1, "all"))
    with pytest.raises(recur.RecurError) as error:
        recur.run(spec, engine="scan", inputs={"b": numpy.ones(5)})
    assert error.value.exit_code == 2 and "device='cuda'" in error.value.message


@pytest.mark.parametrize(("lanes", "keep"), [(1, "all"), (3, "all"), (3, "last")])
def test_scan_under_check_reports_the_first_non_finite_value(lanes: int, keep: str,
                                                             where: str) -> None:
    """Kept whole, the scan's states say where (no replay); kept last, a replay does."""
    spec = recur.load(_affine_spec("a * y[t-1] + b", "float64", lanes, keep))
    b = numpy.ones((5000, lanes))
    b[3000, -1] = numpy.inf
    b = b if lanes > 1 else b[:, 0]
    messages = []
    for device, engine in (("cpu", "interp"), ("cuda", "scan")):
        with pytest.raises(recur.RecurError) as error:
            recur.run(spec, device=device, engine=engine, check=True, inputs={"b": b})
        messages.append(error.value.message)
    assert messages[0] == messages[1] and "t=3000" in messages[0]
    assert ("(lane 2)" in messages[0]) == (lanes > 1)


# The command line and the sources


def test_explain_names_the_cuda_engine_and_why(where: str) -> None:
    result = CliRunner().invoke(cli, ["explain", str(ROOT / "specs/logistic_sweep.yaml"),
                                      "--device", "cuda"])
    assert result.exit_code == 0, result.output
    assert "engine: compiled (one fused CUDA kernel" in result.output
    assert "because: one CUDA kernel runs all" in result.output


def test_device_auto_runs_on_cuda_where_it_works(where: str) -> None:
    if where == "emulated":
        pytest.skip("auto looks for CuPy itself")
    assert recur.run(ROOT / "specs" / "fibonacci.yaml", device="auto").device == "cuda"


def test_cli_device_cuda_gives_the_cpu_bytes(where: str) -> None:
    outputs = [CliRunner().invoke(cli, ["run", str(ROOT / "specs/collatz.yaml"), "--device",
                                        device, "-o", "-", "-f", "csv"]).stdout
               for device in ("cpu", "cuda")]
    assert outputs[0] == outputs[1] and outputs[0].count("\n") > 10


@pytest.mark.parametrize("name", FUSED_SPECS)
def test_fused_kernel_source_is_golden(name: str, request: pytest.FixtureRequest,
                                       where: str) -> None:
    if where == "gpu":
        pytest.skip("the source does not depend on the device")
    spec = recur.load(ROOT / "specs" / f"{name}.yaml")
    source = fused_source(spec)
    body = source[source.index('extern "C"'):]  # the prelude is the same for all
    golden = KERNELS / f"{name}.cu"
    if request.config.getoption("--update-golden") and (
            not golden.exists() or golden.read_text() != body):
        golden.write_text(body)
        pytest.fail(f"regenerated {golden.name}; review git diff tests/golden_kernels")
    assert body == golden.read_text()


def fused_source(spec: recur.Spec) -> str:
    compiled = api.prepare(spec, device="cuda")
    return cudagen.generate(compiled.program, compiled.backend.xp).source


def _nvrtc() -> Any:
    """NVIDIA's run-time compiler, where it is installed (it needs no GPU)."""
    found = ctypes.util.find_library("nvrtc")
    candidates = [found] if found else []
    spec = importlib.util.find_spec("nvidia")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidates += sorted(str(p) for p in Path(folder).glob("*/lib/libnvrtc.so*"))
    for candidate in candidates:
        try:
            for builtins in Path(candidate).parent.glob("libnvrtc-builtins.so*"):
                ctypes.CDLL(str(builtins), mode=ctypes.RTLD_GLOBAL)  # NVRTC opens it by name
            return ctypes.CDLL(candidate)
        except OSError:
            continue
    return None


@pytest.mark.parametrize("name", [*FUSED_SPECS, "scan_float32", "scan_float64"])
def test_nvrtc_compiles_the_generated_source(name: str, where: str) -> None:
    """What CuPy will hand NVRTC compiles, with the options it is given (no GPU needed)."""
    nvrtc = _nvrtc()
    if nvrtc is None or where == "gpu":
        pytest.skip("needs NVRTC (pip install nvidia-cuda-nvrtc); the GPU run compiles anyway")
    if name.startswith("scan_"):
        source = scan.source(name.removeprefix("scan_"))
    else:
        spec = recur.load(ROOT / "specs" / f"{name}.yaml")
        source = fused_source(spec)
    program = ctypes.c_void_p()
    assert nvrtc.nvrtcCreateProgram(ctypes.byref(program), source.encode(), b"recur.cu",
                                    0, None, None) == 0
    options = [b"--fmad=false", b"--gpu-architecture=compute_90"]
    array = (ctypes.c_char_p * len(options))(*options)
    status = nvrtc.nvrtcCompileProgram(program, len(options), array)
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(program, log)
    nvrtc.nvrtcDestroyProgram(ctypes.byref(program))
    assert status == 0, log.value.decode()


def test_an_nvrtc_failure_is_recurs_compile_error() -> None:
    class Module:
        def __init__(self, code: str, options: tuple[str, ...]) -> None:
            assert "--fmad=false" in options

        def get_function(self, name: str) -> None:
            raise RuntimeError("nvrtc: error: identifier 'x' is undefined\n1 error detected")

    with pytest.raises(CompileError, match="NVRTC failed on a generated kernel: nvrtc: error"):
        CupyLauncher(SimpleNamespace(RawModule=Module)).function("source", "recur_kernel")


def test_a_kernel_that_does_not_compile_falls_back_to_the_interpreter(
        where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if where == "gpu":
        pytest.skip("breaks the emulator's compiler on purpose")
    backend = api.get_backend("cuda")

    def broken(source: str, name: str) -> None:
        raise CompileError("NVRTC failed on a generated kernel: (a test)")

    monkeypatch.setattr(backend.launcher, "function", broken)
    spec = recur.load(ROOT / "specs" / "fibonacci.yaml")
    with pytest.warns(EngineNote, match="NVRTC failed on a generated kernel"):
        result = recur.run(spec, device="cuda")
    assert result.engine == "interp"
    agree(recur.run(spec), result, exact=True)
    with pytest.raises(recur.RecurError) as error:
        recur.run(spec, device="cuda", engine="compiled")
    assert error.value.exit_code == 2 and "NVRTC failed" in error.value.message


@pytest.mark.parametrize("engine", ["compiled", "scan"])
def test_a_cuda_kernel_runs_again_on_fresh_buffers(engine: str, where: str) -> None:
    """A replay binds new states to the kernel (or the scan's coefficients) made once."""
    spec = recur.load("steps: 30\noutputs:\n  y:\n    initial: [1.0, 2.0]\n"
                      "    step: 0.5 * y[t-1] + 0.25\n")
    compiled = api.prepare(spec, device="cuda")
    program, backend = compiled.program, compiled.backend
    made = {"compiled": cuda_engine.FusedEngine, "scan": cuda_engine.ScanEngine}[engine]()
    assert made.supports(program) is None
    kernel = made.kernel(program)
    lanes, want = [1.0, 2.0], []
    for _ in range(30):
        lanes = [0.5 * y + 0.25 for y in lanes]
        want.append(lanes)
    for _ in range(2):
        buffers = allocate(program, backend)
        steps, _ = made.run(program, buffers)
        got = collect(program, buffers, steps)["y"]
        assert made.kernel(program) is kernel
        if engine == "compiled":
            assert_array_equal(got, numpy.array(want), strict=True)
        else:  # the scan's compositions round otherwise
            assert_allclose(got, numpy.array(want), rtol=0, atol=SCAN_RTOL["float64"] * 2)


def test_the_cuda_estimates_prefer_the_scan_only_for_long_runs_of_few_lanes(where: str) -> None:
    """What `auto` decides on CUDA, as the engines' estimates say it to a registry."""
    cheaper = {}
    for lanes, steps in ((1, cuda_engine.SCAN_MIN_STEPS), (1, 100),
                         (cuda_engine.SCAN_MAX_LANES + 1, cuda_engine.SCAN_MIN_STEPS)):
        spec = recur.load(_affine_spec("a * y[t-1] + b", "float64", lanes, "last"))
        compiled = api.prepare(spec, device="cuda", steps=steps,
                               inputs={"b": numpy.ones(steps)})
        program = compiled.program
        fused, scanned = cuda_engine.FusedEngine(), cuda_engine.ScanEngine()
        assert fused.supports(program) is None and scanned.supports(program) is None
        cheaper[lanes, steps] = (scanned.estimate(program).seconds
                                 < fused.estimate(program).seconds)
    assert list(cheaper.values()) == [True, False, False]


@pytest.mark.parametrize("engine", ["compiled", "interp"])
def test_cuda_draws_as_the_cpu_does(where: str, engine: str) -> None:
    """Random calls: uniform and integers bit for bit; normal too where emulated, within
    2 ulp on a GPU (recur's own log and cos use + - * /, frexp, floor and sqrt, which
    round alike there, and the kernels are built without FMA contraction)."""
    spec = recur.load(RANDOM_SWEEP)
    cpu = recur.run(spec, seed=11, engine="interp")
    cuda = recur.run(spec, seed=11, engine=engine, device="cuda")
    assert cuda.engine == engine and cuda.steps_run == cpu.steps_run
    assert_array_equal(cuda["hits"], cpu["hits"])
    assert_array_equal(cuda["noise"], cpu["noise"])
    if where == "emulated":
        assert_array_equal(cuda["x"], cpu["x"])
    else:
        numpy.testing.assert_array_max_ulp(cuda["x"], cpu["x"], maxulp=2)


def test_the_scan_leaves_random_calls_to_the_loop(where: str) -> None:
    spec = recur.load("outputs:\n  x:\n    initial: 0.0\n    step: 0.5 * x[t-1] + normal()\n"
                      "steps: 50\n")
    with pytest.raises(recur.RecurError, match="a random call, which the loop draws"):
        recur.run(spec, engine="scan", device="cuda")
    assert recur.run(spec, device="cuda").engine == "compiled"


def test_cuda_draws_the_start_of_a_longer_run_and_a_chunk_of_lanes(where: str) -> None:
    """The fused kernel: 100 steps are the start of 300, and lanes 500.. run as a chunk
    of their own (`Program.first_lane`) draw what they draw in the whole sweep."""
    spec = recur.load(RANDOM_SWEEP.replace("until: uniform() < 0.0001\n", ""))
    whole = recur.run(spec, seed=3, steps=300, engine="compiled", device="cuda")
    short = recur.run(spec, seed=3, steps=100, engine="compiled", device="cuda")
    r = numpy.linspace(0.1, 0.9, 1000)
    compiled = api.prepare(spec, params={"r": r[500:]}, seed=3, steps=300, device="cuda")
    program = replace(compiled.program, first_lane=500)
    half = run_on(registry.choose(program, "compiled").engine, program, compiled.backend)
    for name in whole:
        assert_array_equal(short[name], whole[name][:100])
        assert_array_equal(half.arrays[name], whole[name][:, 500:])


GRADIENT_SPECS = {
    "stochastic_lanes": ("params:\n  r: linspace(2.9, 3.1, 5)\n  s: 0.2\nseed: 3\noutputs:\n"
                         "  x:\n    initial: 0.5\n"
                         "    step: r * x[t-1] * (1 - x[t-1]) + s * normal() * 0.01\n"
                         "steps: 30\n", "x", ["r", "s", "x"]),
    "rnn": (Path("specs/rnn.yaml").read_text(), "h", ["W", "v", "b", "x", "h"]),
}


@pytest.mark.parametrize("name", sorted(GRADIENT_SPECS))
def test_gradients_on_cuda_are_the_interpreters(where: str, name: str) -> None:
    """The backward pass is a Program like any other: the CUDA engines run it."""
    text, of, wrt = GRADIENT_SPECS[name]
    spec = recur.load(text)
    cpu = recur.grad(spec, of=of, wrt=wrt, engine="interp")
    cuda = recur.grad(spec, of=of, wrt=wrt, device="cuda")
    assert (cuda.device, cuda.engine) == ("cuda", "compiled")
    for key in wrt:
        assert_allclose(cuda[key], cpu[key], rtol=1e-12 if where == "emulated" else 1e-9,
                        atol=1e-300, err_msg=key)
