"""The fuzz campaign for recur's front end: YAML, expressions, `--set`, `--input` files.

Two engines, one oracle (`outcome` in tests/spec/test_fuzz.py: every input ends in a result or
in a `RecurError` rendered as one message that points into the spec; anything else is
a crash):

- `atheris`: coverage-guided (libFuzzer through atheris) on random bytes, with recur
  and PyYAML instrumented, seeded with every spec, CSV and .npy in the repository.
  The first byte of an input picks the target, the rest is its payload.
- `hypothesis`: the grammar-aware strategies of tests/spec/test_fuzz.py (near-valid specs,
  expressions, `--set` values, CSV and .npy files), generation only, many examples.

    python fuzz/campaign.py atheris --inputs 100000 --workers 2
    python fuzz/campaign.py hypothesis --inputs 20000 --workers 2

Each worker writes `<out>/<engine>-<n>.json` as it goes; the parent merges them into
`<out>/<engine>.json` and prints the figures: inputs run, outcomes, distinct crashes
(by exception type and innermost frame of recur), with a reproducer of each under
`<out>/crashes/`. Bugs already reported (`KNOWN_BUGS`) are counted apart.
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
MEMORY_LIMIT = 3 * 2**30  # bytes of address space: a fuzzed `zeros(10**9)` meets MemoryError
TIME_LIMIT = 10.0  # seconds an input may take before it counts as slow (and is stopped)
SAVE_EVERY = 200  # inputs between two writes of a worker's figures


class _Slow(BaseException):
    """Raised by the alarm in an input that runs past TIME_LIMIT."""


def _alarm(signum: int, frame: Any) -> None:
    raise _Slow


# --- targets: payload bytes -> one call to judge ------------------------------------------

TEMPLATE_INPUT = """\
sequences:
  s: input
outputs:
  x:
    initial: 0
    step: x[t-1] + s
"""


class Targets:
    """The functions each input is fed to, built after the (instrumented) imports."""

    def __init__(self) -> None:
        import test_fuzz as tf

        import recur
        from recur.diagnostics import Origin
        from recur.io.inputs import read_input
        from recur.lang.parse import parse_expression

        self.tf = tf
        self.recur = recur
        self.origin = Origin
        self.read_input = read_input
        self.parse_expression = parse_expression
        self.set_spec = recur.load(tf.SET_SPEC, path="set.yaml")
        self.input_spec = recur.load(TEMPLATE_INPUT, path="input.yaml")
        self.by_byte: list[tuple[str, Callable[[bytes], Callable[[], object]]]] = [
            ("spec", self.spec),
            ("spec", self.spec),
            ("expression", self.expression),
            ("set", self.set_value),
            ("csv", self.csv),
            ("npy", self.binary),
            ("npz", self.binary),
        ]

    def pick(self, data: bytes) -> tuple[str, Callable[[], object]]:
        if not data:
            return "spec", self.spec(b"")
        kind, make = self.by_byte[data[0] % len(self.by_byte)]
        return kind, make(data[1:])

    def spec(self, payload: bytes) -> Callable[[], object]:
        try:
            text = payload.decode("utf-8") + "\n"
        except UnicodeDecodeError:
            return lambda: self._spec_file(payload)
        inputs = self.tf._inputs_for(text, len(payload))
        return lambda: self.tf.run_capped(self.recur.load(text, path="fuzz.yaml"),
                                          inputs=inputs, check=len(payload) % 2 == 1)

    def _spec_file(self, payload: bytes) -> object:
        with tempfile.NamedTemporaryFile(suffix=".yaml") as file:
            file.write(payload)
            file.flush()
            return self.tf.run_capped(self.recur.load(file.name))

    def expression(self, payload: bytes) -> Callable[[], object]:
        text = payload.decode("utf-8", errors="replace")

        def call() -> object:
            try:
                self.parse_expression(text, self.origin("spec.yaml", 1, 1))
            except self.recur.RecurError as error:
                error.source = text  # as the spec loader would
                raise
            spec = self.recur.load(self.tf.step_spec(text), path="step.yaml")
            return self.tf.run_capped(spec)

        return call

    def set_value(self, payload: bytes) -> Callable[[], object]:
        name = "abv"[payload[0] % 3] if payload else "a"
        text = payload[1:].decode("utf-8", errors="replace")
        return lambda: self.tf.run_capped(self.set_spec, params={name: text})

    def csv(self, payload: bytes) -> Callable[[], object]:
        def call() -> object:
            array = self.tf.load_input(payload, "s")
            return self.tf.run_capped(self.input_spec, inputs={"s": array})

        return call

    def binary(self, payload: bytes) -> Callable[[], object]:
        return lambda: self.tf.load_input(payload, "x")


# --- a worker's figures ------------------------------------------------------------------


class Tally:
    """What a worker has seen: outcomes by kind, crashes by signature with a reproducer."""

    def __init__(self, path: Path, engine: str) -> None:
        self.path = path
        self.engine = engine
        self.started = time.monotonic()
        self.inputs = 0
        self.by_target: collections.Counter[str] = collections.Counter()
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.findings: dict[str, dict[str, Any]] = {}

    def add(self, target: str, got: str, data: bytes | str) -> None:
        self.inputs += 1
        self.by_target[target] += 1
        kind = got.split(":", 1)[0]
        self.outcomes[kind] += 1
        if kind in ("crash", "bad-error", "known", "slow"):
            key = got if kind != "bad-error" else "bad-error:" + _shape_of(got)
            finding = self.findings.setdefault(key, {"count": 0, "target": target,
                                                     "first": got, "input": _printable(data)})
            finding["count"] += 1
            if finding["count"] == 1 and kind in ("crash", "bad-error", "slow"):
                self._save_reproducer(key, data)
                self.save()
        if self.inputs % SAVE_EVERY == 0:
            self.save()

    def _save_reproducer(self, key: str, data: bytes | str) -> None:
        folder = self.path.parent / "crashes"
        folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha1(key.encode()).hexdigest()[:12]
        raw = data.encode() if isinstance(data, str) else data
        (folder / f"{self.path.stem}-{name}.bin").write_bytes(raw)

    def save(self) -> None:
        figures = {
            "engine": self.engine,
            "inputs": self.inputs,
            "seconds": round(time.monotonic() - self.started, 1),
            "by_target": dict(self.by_target),
            "outcomes": dict(self.outcomes),
            "findings": self.findings,
        }
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(figures, indent=2, sort_keys=True))
        temporary.replace(self.path)


def _shape_of(got: str) -> str:
    """A bad error's kind (`no-source`, `line-out-of-range`, ...), without the message
    that varies from input to input."""
    return got.split(":", 2)[1] if got.count(":") >= 2 else got


def _printable(data: bytes | str) -> str:
    if isinstance(data, str):
        return data[:2000]
    try:
        return "utf8:" + data.decode("utf-8")[:2000]
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data[:1500]).decode()


def judge(tally: Tally, targets: Targets | None, target: str, call: Callable[[], object],
          data: bytes | str) -> None:
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT)
    try:
        got = targets.tf.outcome(call) if targets else "error"
    except _Slow:
        got = f"slow:{target}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    tally.add(target, got, data)


def _limit_resources() -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    signal.signal(signal.SIGALRM, _alarm)
    sys.setrecursionlimit(1000)


# --- engines -------------------------------------------------------------------------------


def seeds() -> list[bytes]:
    """Every spec, CSV and .npy of the repository, each under the byte of its target."""
    found = []
    yamls = sorted({*ROOT.glob("specs/**/*.yaml"), *ROOT.glob("docs/examples/*.yaml"),
                    *ROOT.glob("tests/golden/**/*.yaml")})
    found += [b"\x00" + path.read_bytes() for path in yamls]
    for path in yamls[:40]:
        for line in path.read_text().splitlines():
            if "step:" in line:
                found.append(b"\x02" + line.split("step:", 1)[1].strip().encode())
    found += [b"\x04" + path.read_bytes() for path in sorted(ROOT.glob("specs/data/*.csv"))]
    found += [b"\x03a" + text for text in (b"1 + 2", b"arange(4)", b"a * [1, 2, 3]")]
    import numpy as np

    for array in (np.arange(6).reshape(2, 3), np.linspace(0, 1, 5), np.array([True]),
                  np.array(3, dtype=np.int32)):
        buffer = io.BytesIO()
        np.save(buffer, array)
        found.append(b"\x05" + buffer.getvalue())
        buffer = io.BytesIO()
        np.savez(buffer, x=array)
        found.append(b"\x06" + buffer.getvalue())
    return found


def run_atheris(worker: int, inputs: int, out: Path) -> None:
    import atheris

    _limit_resources()
    with atheris.instrument_imports(include=["recur", "yaml"]):
        import yaml  # noqa: F401

        import recur  # noqa: F401
    targets = Targets()
    tally = Tally(out / f"atheris-{worker}.json", "atheris")
    corpus = out / f"corpus-{worker}"
    corpus.mkdir(parents=True, exist_ok=True)
    for n, seed in enumerate(seeds()):
        (corpus / f"seed-{n:04d}").write_bytes(seed)

    def one_input(data: bytes) -> None:
        target, call = targets.pick(data)
        judge(tally, targets, target, call, data)
        if tally.inputs >= inputs:
            tally.save()
            os._exit(0)

    atheris.Setup([sys.argv[0], str(corpus), f"-seed={worker + 1}", "-rss_limit_mb=0",
                   "-max_len=4096", "-timeout=60", "-print_final_stats=0"], one_input)
    atheris.Fuzz()


def run_hypothesis(worker: int, inputs: int, out: Path) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fixed_seed
    from hypothesis import strategies as st

    _limit_resources()
    targets = Targets()
    tf = targets.tf
    tally = Tally(out / f"hypothesis-{worker}.json", "hypothesis")
    dtypes = st.sampled_from(["float64", "int64", "int32", "bool", "complex128"])
    kinds = st.sampled_from(["spec", "spec", "spec", "expression", "set", "csv", "npy"])

    @fixed_seed(worker + 1)
    @settings(max_examples=inputs, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def one_input(data: Any) -> None:
        kind = data.draw(kinds)
        if kind == "spec":
            text = data.draw(tf.spec_texts())
            inputs_for = tf._inputs_for(text, data.draw(st.integers(0, 7)))
            check = data.draw(st.booleans())
            call = lambda: tf.run_capped(  # noqa: E731
                targets.recur.load(text, path="fuzz.yaml"), inputs=inputs_for, check=check)
            shown: bytes | str = text
        elif kind == "expression":
            shown = data.draw(tf.near_expressions)
            source = tf.step_spec(shown, data.draw(dtypes))
            call = lambda: tf.run_capped(  # noqa: E731
                targets.recur.load(source, path="step.yaml"))
        elif kind == "set":
            name = data.draw(st.sampled_from(["a", "b", "v"]))
            shown = f"{name}={data.draw(tf.near_expressions)}"
            call = lambda: tf.run_capped(  # noqa: E731
                targets.set_spec, params={name: shown.split("=", 1)[1]})
        elif kind == "csv":
            shown = data.draw(tf.csv_texts())
            call = targets.csv(shown)
        else:
            shown = data.draw(tf.npy_bytes())
            call = targets.binary(shown)
        judge(tally, targets, kind, call, shown)

    one_input()
    tally.save()


# --- the parent: workers, then the merged figures ----------------------------------------------


def merge(out: Path, engine: str) -> dict[str, Any]:
    parts = [json.loads(path.read_text()) for path in sorted(out.glob(f"{engine}-*.json"))]
    merged: dict[str, Any] = {"engine": engine, "workers": len(parts), "inputs": 0,
                              "seconds": 0.0, "by_target": collections.Counter(),
                              "outcomes": collections.Counter(), "findings": {}}
    for part in parts:
        merged["inputs"] += part["inputs"]
        merged["seconds"] = max(merged["seconds"], part["seconds"])
        merged["by_target"].update(part["by_target"])
        merged["outcomes"].update(part["outcomes"])
        for key, finding in part["findings"].items():
            into = merged["findings"].setdefault(key, {**finding, "count": 0})
            into["count"] += finding["count"]
    merged["by_target"] = dict(merged["by_target"])
    merged["outcomes"] = dict(merged["outcomes"])
    merged["distinct"] = collections.Counter(key.split(":", 1)[0] for key in merged["findings"])
    (out / f"{engine}.json").write_text(json.dumps(merged, indent=2, sort_keys=True))
    return merged


def report(merged: dict[str, Any]) -> str:
    lines = [f"{merged['engine']}: {merged['inputs']:,} inputs in {merged['seconds']:.0f} s "
             f"({merged['workers']} workers)",
             f"  targets: {merged['by_target']}", f"  outcomes: {merged['outcomes']}",
             f"  distinct findings: {dict(merged['distinct'])}"]
    for key, finding in sorted(merged["findings"].items()):
        lines.append(f"  - {key} (x{finding['count']}, {finding['target']}): "
                     f"{finding['input'][:160]!r}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("engine", choices=["atheris", "hypothesis"])
    parser.add_argument("--inputs", type=int, default=100_000, help="in all, over the workers")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path,
                        default=Path(tempfile.gettempdir()) / "recur-fuzz")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path[:0] = [str(TESTS / "spec"), str(TESTS / "support")]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.worker is not None:
        run = run_atheris if args.engine == "atheris" else run_hypothesis
        run(args.worker, args.inputs, args.out)
        return
    for stale in args.out.glob(f"{args.engine}-*.json"):
        stale.unlink()
    share = -(-args.inputs // args.workers)
    workers = [
        subprocess.Popen([sys.executable, __file__, args.engine, "--inputs", str(share),
                          "--out", str(args.out), "--worker", str(n)],
                         stdout=subprocess.DEVNULL,
                         stderr=open(args.out / f"{args.engine}-{n}.log", "w"))  # noqa: SIM115
        for n in range(args.workers)
    ]
    codes = [worker.wait() for worker in workers]
    print(report(merge(args.out, args.engine)))
    if any(codes):
        print(f"worker exit codes: {codes} (see {args.out}/*.log)")


if __name__ == "__main__":
    main()
