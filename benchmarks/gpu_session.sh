#!/usr/bin/env bash
# One GPU session, prepared to fit a short lease: install recur (no network needed),
# run the GPU tests, run the GPU benchmark, leave the logs in FOLDER.
#
#     bash benchmarks/gpu_session.sh FOLDER
set -u
out=${1:?usage: gpu_session.sh FOLDER}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem \
    --format=csv 2>&1 | tee "$out/gpu.txt"
python3 -m pip install -q --no-deps --no-build-isolation -e . >"$out/install.log" 2>&1 \
    || echo "pip install failed (see install.log); running from the source tree"
python3 - <<'PY' 2>&1 | tee -a "$out/gpu.txt"
import sys, cupy, numpy, recur
print("python", sys.version.split()[0], "numpy", numpy.__version__, "cupy", cupy.__version__,
      "cuda runtime", cupy.cuda.runtime.runtimeGetVersion(), "recur", recur.__file__)
PY
echo "== GPU tests"
timeout "${TEST_TIMEOUT:-240}" python3 -m pytest -q -m gpu -p no:cacheprovider --tb=short \
    tests/engine/test_cuda.py >"$out/tests.log" 2>&1
echo "pytest exit $?"
python3 -m pytest -q -p no:cacheprovider \
    tests/cli/test_entrypoints.py::test_importing_the_cli_does_not_import_cupy_or_scipy \
    2>&1 | tail -1
grep -E "passed|failed|error" "$out/tests.log" | tail -3
grep -E "^(FAILED|ERROR)" "$out/tests.log" | head -20
echo "== GPU benchmark"
timeout "${BENCH_TIMEOUT:-300}" python3 benchmarks/gpu.py --repeats 5 ${BENCH_ARGS:-} --json "$out/gpu.json" \
    2>"$out/bench.err" | tee "$out/bench.md"
echo "benchmark exit ${PIPESTATUS[0]}"
grep -B2 -A8 Traceback "$out/bench.err" | head -40
