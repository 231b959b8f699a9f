"""How recur's costs grow with a spec's size: check, run (interpreter) and compile times.

Writes specs of N params, N chained outputs (o_i reads o_{i-1}[t]), a sequence of N
literal elements and a look-back of depth N, and times each in this process:

    python benchmarks/sizes.py                  # N = 100, 1000, 10000, 100000
    python benchmarks/sizes.py --sizes 100 1000 --kinds taps
    python benchmarks/sizes.py --sizes --largest --no-compile   # specs of 1 MB

A size past a limit of the language (a look-back deeper than 10,000, a spec over 1 MB)
is skipped. Compile times are of a cold kernel cache (a fresh folder each time).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable

from cpu import time_calls  # benchmarks/cpu.py, beside this file

import recur
from recur.compile.analyze import MAX_TAP_DEPTH
from recur.spec.load import MAX_SPEC_BYTES

LANES = 4  # several lanes, so that the kernels' lane loops are exercised
STEPS = 100


def params_spec(n: int) -> str:
    """N params, each read by one sum: the loader and the checks walk every one."""
    lines = [f"steps: {STEPS}", "params:"] + [f"  p{i}: {i}.5" for i in range(n)]
    return "\n".join([*lines, "outputs:", "  x:", "    initial: 0.0",
                      "    step: x[t-1] + p0 + p" + str(n - 1), ""])


def outputs_spec(n: int) -> str:
    """N outputs in a chain, each reading the one before at the same step."""
    lines = [f"steps: {STEPS}", "params:", f"  r: arange({LANES}) * 1.0", "outputs:",
             "  o0:", "    initial: r", "    step: o0[t-1] * 0.5 + 1"]
    for i in range(1, n):
        lines += [f"  o{i}:", f"    step: o{i - 1}[t] + 1"]
    return "\n".join([*lines, ""])


def sequence_spec(n: int) -> str:
    """One sequence of N literal elements, summed by one output."""
    values = ", ".join(f"{i % 97}.25" for i in range(n))
    return "\n".join(["sequences:", f"  s: [{values}]", "outputs:", "  x:",
                      "    initial: 0.0", "    step: x[t-1] + s", ""])


def taps_spec(n: int) -> str:
    """One scalar output that reads N steps back (the C engine's lane kernel)."""
    return "\n".join([f"steps: {max(STEPS, 2 * n)}", "outputs:", "  x:",
                      f"    initial: arange({n}) * 1.0", f"    step: x[t-{n}] * 0.5 + 1", ""])


KINDS: dict[str, Callable[[int], str]] = {
    "params": params_spec, "outputs": outputs_spec, "sequence": sequence_spec,
    "taps": taps_spec,
}


def largest(kind: str) -> int:
    """The largest N whose spec of this kind fits in the spec size limit."""
    low, high = 1, 10**6
    while low < high:
        middle = (low + high + 1) // 2
        fits = len(KINDS[kind](middle).encode()) <= MAX_SPEC_BYTES
        low, high = (middle, high) if fits else (low, middle - 1)
    return low


def measure(kind: str, n: int, compile_too: bool) -> dict[str, float | str]:
    """Check, interpreted-run and compiled-run times of one generated spec."""
    if kind == "taps" and n > MAX_TAP_DEPTH:
        return {"skipped": f"look-back deeper than {MAX_TAP_DEPTH}"}
    text = KINDS[kind](n)
    if len(text.encode()) > MAX_SPEC_BYTES:
        return {"skipped": f"{len(text.encode())} bytes, over the limit"}
    row: dict[str, float | str] = {"bytes": float(len(text))}
    row["check"] = time_calls(lambda: recur.check(text), 1)[0]
    spec = recur.load(text)
    row["run"] = time_calls(lambda: recur.run(spec, engine="interp"), 1)[0]
    if compile_too:
        with tempfile.TemporaryDirectory() as cache:
            os.environ["RECUR_CACHE_DIR"] = cache
            row["auto"] = str(recur.check(spec, engine=True).engine)  # before compiling
            row["compiled"] = time_calls(lambda: recur.run(spec, engine="compiled"), 1)[0]
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 1000, 10000, 100000])
    parser.add_argument("--kinds", nargs="+", choices=sorted(KINDS), default=list(KINDS))
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled runs")
    parser.add_argument("--largest", action="store_true",
                        help="also the largest N under the spec size limit (not for taps)")
    args = parser.parse_args(argv)
    print(f"{'kind':9} {'N':>7} {'bytes':>8} {'check s':>8} {'run s':>8} "
          f"{'compile s':>9} auto")
    for kind in args.kinds:
        extra = [largest(kind)] if args.largest and kind != "taps" else []
        for n in [*args.sizes, *extra]:
            row = measure(kind, n, not args.no_compile)
            if "skipped" in row:
                print(f"{kind:9} {n:>7} skipped: {row['skipped']}", flush=True)
                continue
            compiled = row.get("compiled")
            print(f"{kind:9} {n:>7} {row['bytes']:>8.0f} {row['check']:>8.3f} "
                  f"{row['run']:>8.3f} "
                  f"{'-' if compiled is None else format(compiled, '9.3f'):>9} "
                  f"{row.get('auto', '-')}", flush=True)


if __name__ == "__main__":
    main()
