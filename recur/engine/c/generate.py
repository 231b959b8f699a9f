"""A `Program` -> the C source of one kernel function with the time loop inside.

For each step, for each output in evaluation order, for each lane, the kernel evaluates
the step expression and stores it (`recur.engine.c.native` compiles and runs it). It
gives the interpreter's values because every operation is done in the dtype NumPy uses
there, which the probe step observed: each operand is cast to that dtype first (so a
weak Python float next to float32 is rounded to float32, as under NEP 50), integer
operations are checked in int64 and range-checked for narrower dtypes, and the C
compiler is told not to contract or reassociate floating-point operations. An output's
random calls draw for a block of its lanes before their loop (`recur.engine.c.draws`).

What the kernel cannot do exactly it refuses here with `Unsupported` (and another
engine runs the spec): operations that mix lanes (`@`, reductions, indexing by a
state), complex, float16 and 64-bit unsigned dtypes, and functions C has no match for.
Sub-expressions the compiler moved out of the loop (hoisted or swept) come in as
arguments, so the source depends on the spec's structure and dtypes, never on its
values: one compile serves every `--set`. The states are arguments too, named in the
`Kernel` and bound to each run's `Buffers`: a kernel made once runs on fresh states.

A fault (integer overflow, division by zero, a non-finite value under `--check`, or a
value outside an output's dtype) stops the kernel with a status; the interpreter then
replays the run and reports it with the message it always gives.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy

from recur.compile import ir
from recur.diagnostics import Unsupported
from recur.engine.c import draws, mathfn
from recur.engine.plan import Buffers
from recur.lang import exact, philox
from recur.lang.casts import DTYPES, truncation_limit
from recur.lang.functions import FUNCTIONS
from recur.lang.intops import INT64_MAX, INT64_MIN
from recur.lang.keep import of as of_keep

# Lanes of a matrix product summed together, their sums in registers while the shared
# index runs (W6, 64 lanes: 8.7 ms for its products against 13.0 a lane at a time).
PRODUCT_BLOCK = 32
STATUS_FAULT = 1  # status[0] after a fault; status[1] is its step
STATUS_UNTIL = -1  # status[0] after `until` held; status[1] is its step

# What each dtype a kernel computes in is called in C and in CUDA (whose NVRTC has no
# <stdint.h>).
TYPE_NAMES = {
    "float64": ("double", "double"), "float32": ("float", "float"),
    "int64": ("int64_t", "long long"), "int32": ("int32_t", "int"),
    "int16": ("int16_t", "short"), "int8": ("int8_t", "signed char"),
    "uint32": ("uint32_t", "unsigned int"), "uint16": ("uint16_t", "unsigned short"),
    "uint8": ("uint8_t", "unsigned char"), "bool": ("bool", "bool"),
}
C_TYPES = {dtype: names[0] for dtype, names in TYPE_NAMES.items()}
CUDA_TYPES = {dtype: names[1] for dtype, names in TYPE_NAMES.items()}
_INT_DTYPES = frozenset(name for name in C_TYPES if "int" in name)
_FLOAT_DTYPES = frozenset({"float32", "float64"})

# libm's functions; NumPy's own are within a few ulp of them (docs/performance.md).
# Functions whose C form is exact: casts (`recur.lang.casts`), and the parts of a real
# number (complex values are not compiled).
_EXACT_FUNCTIONS = frozenset({*DTYPES, "real", "imag", "conj", "angle"})
_CHECKED = {"+": "r_add", "-": "r_sub", "*": "r_mul", "//": "r_floordiv", "%": "r_mod",
            "**": "r_pow"}

# What both dialects share, written against `R_FN` (how a helper is declared), `r_i64`
# (int64) and the checked primitives r_add, r_sub, r_mul, which each dialect defines.
COMMON = """\
R_FN r_i64 r_floordiv(r_i64 a, r_i64 b, r_i64 *st) {
    if (b == 0 || (a == INT64_MIN && b == -1)) return r_fail(st);
    r_i64 q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
R_FN r_i64 r_mod(r_i64 a, r_i64 b, r_i64 *st) {
    if (b == 0) return r_fail(st);
    if (b == -1) return 0;
    r_i64 m = a % b;
    return (m != 0 && ((m < 0) != (b < 0))) ? m + b : m;
}
R_FN r_i64 r_pow(r_i64 a, r_i64 b, r_i64 *st) {
    if (b < 0) return r_fail(st);
    r_i64 result = 1;
    while (b > 0) {
        if (b & 1) result = r_mul(result, a, st);
        b >>= 1;
        if (b > 0) a = r_mul(a, a, st);
    }
    return result;
}
R_FN r_i64 r_neg(r_i64 a, r_i64 *st) { return a == INT64_MIN ? r_fail(st) : -a; }
R_FN r_i64 r_abs(r_i64 a, r_i64 *st) { return a == INT64_MIN ? r_fail(st) : (a < 0 ? -a : a); }
R_FN r_i64 r_fit(r_i64 a, r_i64 low, r_i64 high, r_i64 *st)
{ return (a < low || a > high) ? r_fail(st) : a; }
"""
_FLOAT_DIVMOD = """\
/* NumPy's floor division and remainder of floats (npy_divmod), for T_ (math suffix F_). */
R_FN T_ r_fdivmodF_(T_ a, T_ b, T_ *mod_out) {
    T_ mod = fmodF_(a, b);
    if (b == 0) { *mod_out = mod; return a / b; }
    T_ div = (a - mod) / b;
    if (mod != 0) {
        if ((b < 0) != (mod < 0)) { mod += b; div -= 1; }
    } else {
        mod = copysignF_((T_)0, b);
    }
    T_ floordiv;
    if (div != 0) {
        floordiv = floorF_(div);
        if (div - floordiv > (T_)0.5) floordiv += 1;
    } else {
        floordiv = copysignF_((T_)0, a / b);
    }
    *mod_out = mod;
    return floordiv;
}
R_FN T_ r_floordiv_S_(T_ a, T_ b) { T_ m; return r_fdivmodF_(a, b, &m); }
R_FN T_ r_mod_S_(T_ a, T_ b)
{ T_ m; if (b == 0) return fmodF_(a, b); r_fdivmodF_(a, b, &m); return m; }
"""
COMMON += "".join(_FLOAT_DIVMOD.replace("T_", c_type).replace("F_", math_suffix)
                  .replace("S_", short) for c_type, math_suffix, short in
                  (("double", "", "d"), ("float", "f", "f")))
COMMON += """\
R_FN r_i64 r_min_i(r_i64 a, r_i64 b) { return a <= b ? a : b; }
R_FN r_i64 r_max_i(r_i64 a, r_i64 b) { return a >= b ? a : b; }
R_FN double r_sign_d(double a) { return a != a ? a : (double)((a > 0) - (a < 0)); }
R_FN float r_sign_f(float a) { return a != a ? a : (float)((a > 0) - (a < 0)); }
R_FN r_i64 r_sign_i(r_i64 a) { return (a > 0) - (a < 0); }
""" + exact.C_FUNCTIONS

# Casts (recur.lang.casts): a float becomes an integer by truncation where one holds it,
# `limit` being 2**(bits-1); NaN, infinities and values beyond it are faults.
COMMON += """\
R_FN r_i64 r_trunc_i(double a, double limit, r_i64 *st) {
    double whole = trunc(a);
    return (whole >= -limit && whole < limit) ? (r_i64)whole : r_fail(st);
}
"""

C_HEADER = """\
/* Generated by recur from a spec; compiled without -ffast-math and with
   -ffp-contract=off, so that every operation rounds as NumPy's does. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#define R_FN static inline
#define R_NOINLINE static __attribute__((noinline))
typedef int64_t r_i64;
R_FN r_i64 r_fail(r_i64 *st) { st[0] = 1; return 0; }
R_FN r_i64 r_add(r_i64 a, r_i64 b, r_i64 *st)
{ r_i64 r; return __builtin_add_overflow(a, b, &r) ? r_fail(st) : r; }
R_FN r_i64 r_sub(r_i64 a, r_i64 b, r_i64 *st)
{ r_i64 r; return __builtin_sub_overflow(a, b, &r) ? r_fail(st) : r; }
R_FN r_i64 r_mul(r_i64 a, r_i64 b, r_i64 *st)
{ r_i64 r; return __builtin_mul_overflow(a, b, &r) ? r_fail(st) : r; }
R_FN unsigned long long r_bits_d(double x)
{ unsigned long long b; __builtin_memcpy(&b, &x, sizeof b); return b; }
R_FN double r_from_bits_d(unsigned long long b)
{ double x; __builtin_memcpy(&x, &b, sizeof x); return x; }
"""
# The 128-bit product of two 64-bit words, which the random calls' Philox needs: its low
# word, and its high word in `*high` (one multiplication on x86-64).
C_MULHILO = """\
R_FN unsigned long long r_mulhilo(unsigned long long a, unsigned long long b,
                                  unsigned long long *high)
{ unsigned __int128 p = (unsigned __int128)a * b; *high = p >> 64; return p; }
"""


def where_functions(types: dict[str, str]) -> str:
    """`r_where_<dtype>(c, a, b)`: a call, so both values are computed first, as in NumPy."""
    return "".join(f"R_FN {c_type} r_where_{dtype}(bool c, {c_type} a, {c_type} b)"
                   " { return c ? a : b; }\n" for dtype, c_type in types.items())


PRELUDE = C_HEADER + COMMON + where_functions(C_TYPES)

_RETURN_ON_FAULT = "if (status[0] != 0) { status[1] = t; return t; }"
# The outputs one C function computes. The C compiler's time grows as the square of a
# function's statements (gcc -O3 and -O1 alike: 1,000 outputs in one function took 91 s,
# 300 took 9), so a step of more outputs is split into functions of this many, each
# compiled on its own (docs/robustness.md, "Large specs"). 1,000 outputs compiled in
# 9.9 s at 16 a function, 9.3 s at 64, 13.9 s at 256.
OUTPUTS_PER_FUNCTION = 64
_ARRAY = re.compile(r"\ba(\d+)\[")


def _used(lines: list[str]) -> list[int]:
    """The arrays `a<k>` that some code reads or writes."""
    return sorted({int(k) for line in lines for k in _ARRAY.findall(line)})


@dataclass(frozen=True, slots=True)
class Kernel:
    """The C source of `kernel(t0, t1, status, steps, args, dims)` and its arguments.

    `arguments[k]` is an array, or `("history", output)`: that output's states, which
    `bind` takes from a run's `Buffers`. `args[k]` points at the data of the k-th bound
    array (contiguous, in the dtype the source reads it as); `dims[2k]` and `dims[2k+1]`
    are its rows and columns.
    """

    source: str
    arguments: tuple[Any, ...]
    lane_block: int = 0  # lanes per block of the lane kernel's (`recur.engine.c.lanes`)


def bind(arguments: Iterable[Any], buffers: Buffers) -> tuple[Any, ...]:
    """A kernel's arguments as arrays: its named ones bound to this run's states, each a
    (rows, lanes) view of the history the kernel writes in place."""
    return tuple(_bound(argument, buffers) for argument in arguments)


def _bound(argument: Any, buffers: Buffers) -> Any:
    if not isinstance(argument, tuple):
        return argument
    role, name = argument  # "history": the states; "kept": the rows `every K` keeps
    history = buffers.histories[name]
    states = history.rows if role == "history" else history.kept
    assert states is not None, f"output '{name}' keeps no rows of its own"
    rows = states.reshape(len(states), math.prod(history.shape))
    assert not isinstance(rows, numpy.ndarray) or not rows.size or numpy.shares_memory(
        rows, states), "written in place"
    return rows


@dataclass
class _Arguments:
    """The kernel's arguments, each named once however often it is read, and the dtype
    the source reads each as."""

    names: dict[Any, int] = field(default_factory=dict)
    values: list[Any] = field(default_factory=list)
    dtypes: list[str] = field(default_factory=list)

    def add(self, key: Any, value: Any, dtype: str | None = None) -> int:
        """The index of `key`'s argument: `value` (an array, or a name that `bind`
        resolves, then read as `dtype`)."""
        if key not in self.names:
            self.names[key] = len(self.values)
            self.values.append(value)
            self.dtypes.append(dtype or str(value.dtype))
        return self.names[key]


def generate(program: ir.Program, xp: Any) -> Kernel:
    """The kernel for `program` (its arrays in the array module `xp`), or `Unsupported`
    with the reason it cannot be one."""
    return _Generator(program, xp, batch_draws=True).kernel()


class _Generator:
    """The C dialect; `recur.engine.cuda.generate` derives the CUDA one from it."""

    types = C_TYPES  # dtype -> the C type the dialect names it by
    mulhilo = C_MULHILO  # how the dialect defines r_mulhilo
    # the helper each checked integer operation calls
    checked_calls: ClassVar[dict[str, str]] = _CHECKED
    own_functions: ClassVar[mathfn.Owned] = mathfn.FUNCTIONS  # math it computes itself

    def __init__(self, program: ir.Program, xp: Any, batch_draws: bool = False) -> None:
        self.program = program
        self.xp = xp  # where the kernel's arrays must live
        # Whether a step's draws for its lanes are made a block of lanes at a time,
        # before the lane loop (`recur.engine.c.draws`); else each lane draws its own.
        self.batch_draws = batch_draws
        self.fills: list[str] = []  # a statement per random call: its block's words
        self.args = _Arguments()
        self.target: tuple[int, ...] = ()  # the lanes of the value being built
        self.checked = False  # whether the expression being built can fault
        self.before: list[str] = []  # statements before the lane loop (matrix products)
        self.lane = "i"  # the loop variable that walks the lanes being built
        self.helpers: dict[str, str] = {}  # functions the expressions call, by name
        self.products = 0  # matrix products so far: each has its own sums

    def kernel(self) -> Kernel:
        outputs = self.program.outputs
        functions: list[str] = []
        if len(outputs) <= OUTPUTS_PER_FUNCTION:
            body = [line for output in outputs for line in self._output(output)]
        else:
            body = []
            for first in range(0, len(outputs), OUTPUTS_PER_FUNCTION):
                part = outputs[first:first + OUTPUTS_PER_FUNCTION]
                name = f"step{first // OUTPUTS_PER_FUNCTION}"
                functions += self._step_function(name, [
                    line for output in part for line in self._output(output)])
                body.append(f"        if ({name}(t, status, args, dims) >= 0) return t;")
        if self.program.until is not None:
            self.target = ()
            self.checked = False
            body.append(f"        bool stop = (bool)({self._expr(self.program.until)});")
            if self.checked:
                body.append(f"        {_RETURN_ON_FAULT}")
            body.append(f"        if (stop) {{ status[0] = {STATUS_UNTIL}; status[1] = t; "
                        "return t + 1; }")
        everything = range(len(self.args.values))
        declarations = self._declarations(_used(body) if functions else everything)
        lines = [
            PRELUDE + "".join(self.helpers.values()),
            *functions,
            "int64_t kernel(int64_t t0, int64_t t1, int64_t *status, int64_t steps,",
            "               void **args, const int64_t *dims) {",
            "    (void)steps; (void)dims;",
            *declarations,
            "    for (int64_t t = t0; t < t1; t++) {",
            *body,
            "    }",
            "    return t1;",
            "}",
            "",
        ]
        return Kernel("\n".join(lines), tuple(self.args.values))

    def _declarations(self, used: Iterable[int]) -> list[str]:
        """The kernel's arrays `used`, by their names `a<k>`."""
        return [f"    {self.types[self.args.dtypes[k]]} *restrict a{k} = "
                f"({self.types[self.args.dtypes[k]]} *)args[{k}];" for k in used]

    def _step_function(self, name: str, body: list[str]) -> list[str]:
        """Part of a step, kept out of the kernel (noinline) so that it compiles alone:
        returns -1, or the step `t` that faulted (status says how)."""
        return [
            f"__attribute__((noinline)) static int64_t {name}(int64_t t, int64_t *status, "
            "void **args, const int64_t *dims) {",
            *self._declarations(_used(body)),
            *body,
            "    return -1;",
            "}",
        ]

    def _step_value(self, output: ir.Output) -> str:
        """The code of `output`'s new state, range-checked and cast to its dtype; sets
        `target` (the lanes being built) and `checked` (whether it can fault)."""
        if output.dtype not in self.types:
            raise Unsupported(f"output '{output.name}' is {output.dtype}")
        self.target = output.shape
        self.checked = False
        value = self._expr(output.step)
        if output.check_range is not None:  # before the cast, which would wrap
            low, high = output.check_range
            value = f"r_fit({value}, {_int(low)}, {_int(high)}, status)"
            self.checked = True
        return self._converted(value, self._seen(output.step), output.dtype)

    def _output(self, output: ir.Output) -> list[str]:
        self.before = []
        self.fills = []
        value = self._step_value(output)
        rows = self._history(output.name)
        lanes = f"dims[{2 * rows + 1}]"
        cell = f"a{rows}[({self._row(output.name, 0)}) * {lanes} + i]"
        body = [f"{cell} = {value};"]
        if self.checked:
            body.append(_RETURN_ON_FAULT)
        if self.program.check_finite and output.dtype in _FLOAT_DTYPES:
            body.append(f"if (!isfinite({cell})) {{ status[0] = {STATUS_FAULT}; "
                        "status[1] = t; return t; }")
        body.extend(self._keep_every(output, cell, "i"))
        if not self.fills:
            return [*self.before, f"        for (int64_t i = 0; i < {lanes}; i++) {{",
                    *(f"            {line}" for line in body), "        }"]
        return [*self.before,  # the lanes in blocks, each drawn for before its loop
                f"        for (int64_t i0 = 0; i0 < {lanes}; i0 += R_DRAW_BLOCK) {{",
                f"            const int64_t count = {lanes} - i0 < R_DRAW_BLOCK ? "
                f"{lanes} - i0 : R_DRAW_BLOCK;",
                *(f"            {line}" for line in self.fills),
                "            for (int64_t i = i0; i < i0 + count; i++) {",
                *(f"                {line}" for line in body), "            }", "        }"]

    def _keep_every(self, output: ir.Output, value: str, column: str) -> list[str]:
        """For `keep: every K`, the statement that keeps step t's `value` when (t + 1) % K
        is 0, in row ((t + 1) / K - 1) modulo the kept rows (`recur.engine.history`)."""
        keep = of_keep(output.keep)
        if keep.mode != "every":
            return []
        kept = self.args.add(("kept", output.name), ("kept", output.name), output.dtype)
        every = keep.n
        return [f"if ((t + 1) % {every} == 0) a{kept}[(((t + 1) / {every} - 1) % "
                f"dims[{2 * kept}]) * dims[{2 * kept + 1}] + {column}] = {value};"]

    # Leaves: where each value comes from, and which of its elements lane `i` reads

    def _history(self, name: str) -> int:
        """The argument that holds output `name`'s states, bound at each run."""
        return self.args.add(("history", name), ("history", name),
                             self.program.output(name).dtype)

    def _row(self, name: str, lag: int, t: str = "t") -> str:
        """The history row that holds `name[t - lag]`: the whole trajectory for `keep:
        all` (`recur.engine.history`), else a ring whose size, the argument's rows, is a
        power of two (t - lag masked: the right row for a negative one too)."""
        output = self.program.output(name)
        if output.keep == "all":
            return f"{t} + {output.depth - lag}"
        mask = f"(dims[{2 * self._history(name)}] - 1)"  # a ring of 2**k rows (history)
        return f"({t} - {lag}) & {mask}"

    def _column(self, shape: tuple[int, ...]) -> str:
        """Which element of a value of `shape` lane `i` of the current output reads."""
        size = math.prod(shape)
        if size == 1:
            return "0"
        if shape == self.target:
            return self.lane
        try:
            lanes = numpy.broadcast_to(numpy.arange(size).reshape(shape), self.target)
        except ValueError:
            raise Unsupported(f"a value of shape {shape} is read by lanes {self.target}") from None
        padded = (1,) * (len(self.target) - len(shape)) + tuple(shape)
        for cut in range(1, len(padded)):  # a value repeated along the leading or trailing axes
            inner = math.prod(self.target[cut:])
            if padded[:cut] == (1,) * cut and padded[cut:] == self.target[cut:]:
                return f"(({self.lane}) % {inner})"
            if padded[:cut] == self.target[:cut] and padded[cut:] == (1,) * len(padded[cut:]):
                return f"(({self.lane}) / {inner})"
        mapping = self.xp.asarray(numpy.ascontiguousarray(lanes, dtype=numpy.int64).reshape(1, -1))
        return f"a{self.args.add(('lanes', shape, self.target), mapping)}[{self.lane}]"

    def _constant(self, key: Any, value: Any) -> str:
        """A value that is the same at every step, as a one-row array."""
        array = self.xp.asarray(value)
        self._check_dtype(str(array.dtype))
        flat = self.xp.ascontiguousarray(array).reshape(1, array.size)
        return f"a{self.args.add(key, flat)}[{self._column(tuple(array.shape))}]"

    def _rows(self, key: Any, rows: Any, row: str) -> str:
        """Row `row` of a value that changes with the step: rows of a sequence or sweep."""
        array = self.xp.asarray(rows)
        self._check_dtype(str(array.dtype))
        flat = self.xp.ascontiguousarray(
            array.reshape(array.shape[0], math.prod(array.shape[1:])))
        index = self.args.add(key, flat)
        return f"a{index}[({row}) * dims[{2 * index + 1}] + {self._column(array.shape[1:])}]"

    # Expressions

    def _seen(self, node: ir.Node) -> ir.Type:
        seen = node.type
        if seen is None:
            raise Unsupported("a value that the probe step did not see")
        self._check_dtype(seen.dtype)
        return seen

    def _check_dtype(self, dtype: str) -> None:
        if dtype not in self.types:
            raise Unsupported(f"{dtype} values")

    def _expr(self, node: ir.Node) -> str:
        method = getattr(self, f"_expr_{type(node).__name__}", None)
        if method is None:
            raise Unsupported(f"{type(node).__name__.lower()} expressions")
        return method(node)  # type: ignore[no-any-return]

    def _expr_Hoisted(self, node: ir.Hoisted) -> str:
        return self._constant(("hoisted", node.slot), self.program.hoisted[node.slot])

    def _expr_Swept(self, node: ir.Swept) -> str:
        """Computed in the loop, as fast as read from rows made before it (which are then
        never made: `recur.compile.sweeps`); read where the kernel cannot compute it (a
        function without a C name)."""
        try:
            return self._expr(node.source)
        except Unsupported:
            rows = self.program.swept[node.slot]
            if rows is None:
                raise
            return self._rows(("swept", node.slot), rows, "t")

    def _typed(self, node: ir.Node, dtype: str) -> str:
        """`node`'s value in `dtype`, as NumPy converts an operand before an operation."""
        return self._converted(self._expr(node), self._seen(node), dtype)

    def _converted(self, code: str, seen: ir.Type, dtype: str) -> str:
        """A value cast to `dtype`. A Python int becomes a float32 by way of a double, as
        NumPy converts it (2**60 + 2**36 + 1 rounds to 2**60, not up)."""
        if seen.python and seen.dtype == "int64" and dtype == "float32":
            return self._cast(f"((double)({code}))", "float64", dtype)
        return self._cast(code, seen.dtype, dtype)

    def _int_operand(self, node: ir.Node, dtype: str) -> str:
        """An operand of an integer operation done in int64 whose result is `dtype`. A
        Python int must fit `dtype` itself, as NumPy requires (else an overflow)."""
        code = self._typed(node, "int64")
        if dtype == "int64" or not self._seen(node).python:
            return code
        return self._fit(code, dtype)

    def _fit(self, code: str, dtype: str) -> str:
        """An int64 value checked to fit integer `dtype` (else a fault), still in int64."""
        self.checked = True
        info = numpy.iinfo(dtype)
        return f"r_fit({code}, {_int(int(info.min))}, {_int(int(info.max))}, status)"

    def _cast(self, code: str, have: str, want: str) -> str:
        return code if have == want else f"(({self.types[want]})({code}))"

    def _expr_Literal(self, node: ir.Literal) -> str:
        return _literal(node.value)

    def _expr_Time(self, node: ir.Time) -> str:
        return "t"

    def _expr_Steps(self, node: ir.Steps) -> str:
        return "steps"

    def _expr_Param(self, node: ir.Param) -> str:
        return self._constant(("param", node.name), self.program.params[node.name])

    def _expr_SequenceRead(self, node: ir.SequenceRead) -> str:
        return self._rows(("sequence", node.sequence), self.program.sequences[node.sequence],
                          f"t + {node.row}")

    def _expr_Subscript(self, node: ir.Subscript) -> str:
        raise Unsupported("indexing other than x[t-k] and s[t+k]")

    def _expr_Draw(self, node: ir.Draw) -> str:
        """`recur.lang.philox`'s C twin, for the lane being built (its element)."""
        self.helpers["r_philox"] = self.mulhilo + philox.C_SOURCE  # only in kernels that draw
        shape = self._seen(node).shape
        if math.prod(shape) != 1 and shape != self.target:
            raise Unsupported("a random call whose elements are not its output's lanes")
        keys = numpy.array([[self.program.seed, self.program.first_lane]],
                           dtype=numpy.uint64).view(numpy.int64)
        k = self.args.add(("seed",), self.xp.asarray(keys))  # values: not in the source
        # a chunk of lanes numbers its elements as the whole sweep does
        start = f"a{k}[1] * {math.prod(shape[1:])} + " if shape else ""
        if self.batch_draws and math.prod(shape) != 1 and len(self.fills) < draws.SITES:
            w0, w1 = self._block_words(node, f"{start}i0", f"(r_u64)a{k}[0]")
            standard = {"uniform": f"r_unit({w0})", "normal": f"r_normal_words({w0}, {w1})"}
            integers = f"r_integers_word({w0}"
        else:
            element = start + ("0" if math.prod(shape) == 1 else self.lane)
            counter = f"(r_u64)(t), (r_u64)({element}), {node.site}ULL, (r_u64)a{k}[0]"
            standard = {kind: f"r_{kind}({counter})" for kind in ("uniform", "normal")}
            integers = f"r_integers({counter}"
        if node.kind == "integers":
            self.checked = True
            low, high = (self._typed(arg, "int64") for arg in node.args)
            return f"{integers}, {low}, {high}, status)"
        drawn = standard[node.kind]
        if not node.args:
            return drawn
        low, scale = (self._typed(arg, "float64") for arg in node.args)
        if node.kind == "uniform":
            scale = f"({scale} - {low})"
        return f"({low} + {scale} * {drawn})"

    def _block_words(self, node: ir.Draw, first: str, seed: str) -> tuple[str, str]:
        """W0 and W1 of lane `i`'s draw, made for its block of lanes before their loop
        (`fills`), the block's first lane being element `first`."""
        self.helpers["r_draw_words"] = draws.c_source()
        words = f"d{node.site}"
        self.fills.append(f"r_u64 {words}[2][R_DRAW_BLOCK]; r_draw_words({words}[0], "
                          f"{words}[1], count, (r_u64)(t), (r_u64)({first}), "
                          f"{node.site}ULL, {seed});")
        return f"{words}[0][i - i0]", f"{words}[1][i - i0]"

    def _expr_Tap(self, node: ir.Tap) -> str:
        return self._tap(node.output, node.lag)

    def _tap(self, name: str, lag: int) -> str:
        """`name[t - lag]`, read from the output's history."""
        rows = self._history(name)
        row = self._row(name, lag)
        column = self._column(self.program.output(name).shape)
        return f"a{rows}[({row}) * dims[{2 * rows + 1}] + {column}]"

    def _expr_Unary(self, node: ir.Unary) -> str:
        dtype = self._seen(node).dtype
        if node.op == "+":
            return self._expr(node.operand)
        if node.op == "not":
            return f"(!({self._expr(node.operand)}))"
        if dtype in _INT_DTYPES:
            return self._int_result(f"r_neg({self._typed(node.operand, 'int64')}, status)", dtype)
        _no_bool_arithmetic(dtype)
        return f"(-{self._typed(node.operand, dtype)})"

    def _expr_Binary(self, node: ir.Binary) -> str:
        if node.op in ("and", "or"):  # both sides evaluated, as NumPy does
            op = "&" if node.op == "and" else "|"
            return f"((bool)({self._expr(node.left)}) {op} (bool)({self._expr(node.right)}))"
        if node.op == "@":
            return self._matrix_vector(node)
        dtype = self._seen(node).dtype
        _no_bool_arithmetic(dtype)
        exponent = ir.fixed_exponent(node)
        k = exact.integer_exponent_of(exponent)
        if dtype in _INT_DTYPES:
            if node.op == "/":
                raise Unsupported("true division with an integer result")
            left = self._int_operand(node.left, dtype)
            right = _int(k) if k is not None else self._int_operand(node.right, dtype)
            return self._int_result(f"{self.checked_calls[node.op]}({left}, {right}, status)",
                                    dtype)
        suffix = "d" if dtype == "float64" else "f"
        left = self._typed(node.left, dtype)
        if exact.is_half_of(exponent):
            return f"r_half_{suffix}({left})"
        if k is not None:  # the interpreter's chain of multiplications
            name = exact.c_integer_power_name(suffix, k)
            self.helpers[name] = exact.c_integer_power(name, self.types[dtype], k)
            return f"{name}({left})"
        right = self._typed(node.right, dtype)
        if node.op == "//":
            return f"r_floordiv_{suffix}({left}, {right})"
        if node.op == "%":
            return f"r_mod_{suffix}({left}, {right})"
        if node.op == "**":
            return f"r_pow_{suffix}({left}, {right})"
        return f"({left} {node.op} {right})"

    def _matrix_vector(self, node: ir.Binary) -> str:
        """`M @ v` or `v @ M`, M fixed, v a state or sequence read: computed for all lanes
        before the lane loop, each lane's sum in order of the shared index (the lanes in
        blocks of `PRODUCT_BLOCK` whose sums stay in registers, then the rest one by one).

        NumPy hands these to BLAS, whose order of summation is its own: results agree to
        a few ulp of the sum of the terms' sizes, not bit for bit (docs/performance.md).
        """
        dtype = self._seen(node).dtype
        if dtype not in _FLOAT_DTYPES:
            raise Unsupported(f"matrix products of {dtype}")
        left, right = self._seen(node.left), self._seen(node.right)
        if len(left.shape) == 2 and len(right.shape) == 1:
            matrix_node, vector_node, layout = node.left, node.right, "transpose"
        elif len(left.shape) == 1 and len(right.shape) == 2:
            matrix_node, vector_node, layout = node.right, node.left, "as is"
        else:
            raise Unsupported("matrix products other than matrix @ vector")
        fixed = self._fixed(matrix_node)
        if fixed is None or not isinstance(vector_node, ir.Tap | ir.SequenceRead):
            raise Unsupported("matrix products other than a fixed matrix and a state")
        key, matrix = fixed
        lanes = matrix.shape[0] if layout == "transpose" else matrix.shape[1]
        if (lanes,) != self.target:
            raise Unsupported("a matrix product whose lanes are not its output's")
        # Stored as [shared index][lane], so that the inner loop runs along lanes.
        by_index = numpy.ascontiguousarray(matrix.T if layout == "transpose" else matrix,
                                           dtype=dtype)
        m = self.args.add(("matrix", key, layout, dtype), by_index)
        self.products += 1
        total = self.args.add(("product", self.products), numpy.zeros((1, lanes), dtype=dtype))
        saved = self.target, self.lane
        self.target, self.lane = self._seen(vector_node).shape, "j"
        vector = self._typed(vector_node, dtype)
        self.target, self.lane = saved
        c_type, size, block = C_TYPES[dtype], f"dims[{2 * total + 1}]", PRODUCT_BLOCK
        rest = f"{size} - {size} % {block}"  # the lanes after the last whole block
        self.before += [
            f"        for (int64_t i0 = 0; i0 < {rest}; i0 += {block}) {{",
            f"            {c_type} sums[{block}] = {{0}};",
            f"            for (int64_t j = 0; j < dims[{2 * m}]; j++) {{",
            f"                const {c_type} vj = {vector};",
            f"                const {c_type} *restrict row = a{m} + j * {size} + i0;",
            f"                for (int64_t k = 0; k < {block}; k++) sums[k] += row[k] * vj;",
            "            }",
            f"            for (int64_t k = 0; k < {block}; k++) a{total}[i0 + k] = sums[k];",
            "        }",
            f"        for (int64_t i = {rest}; i < {size}; i++) a{total}[i] = 0;",
            f"        for (int64_t j = 0; j < dims[{2 * m}]; j++) {{",
            f"            const {c_type} vj = {vector};",
            f"            const {c_type} *restrict row = a{m} + j * {size};",
            f"            for (int64_t i = {rest}; i < {size}; i++) a{total}[i] += row[i] * vj;",
            "        }",
        ]
        return f"a{total}[{self.lane}]"

    def _fixed(self, node: ir.Node) -> tuple[Any, Any] | None:
        """A key naming a value that is the same at every step, and the value, if
        `node` is one."""
        if isinstance(node, ir.Hoisted):
            return ("hoisted", node.slot), self.xp.asarray(self.program.hoisted[node.slot])
        if isinstance(node, ir.Param):
            return ("param", node.name), self.xp.asarray(self.program.params[node.name])
        return None

    def _int_result(self, code: str, dtype: str) -> str:
        """A checked int64 computation, range-checked when its dtype is narrower."""
        self.checked = True
        if dtype == "int64":
            return code
        return f"(({self.types[dtype]}){self._fit(code, dtype)})"

    def _expr_Compare(self, node: ir.Compare) -> str:
        seen = [self._seen(operand) for operand in node.operands]
        tests = []
        for k, op in enumerate(node.ops):
            common = _promoted(seen[k], seen[k + 1])
            left = self._typed(node.operands[k], common)
            right = self._typed(node.operands[k + 1], common)
            tests.append(f"({left} {op} {right})")
        return tests[0] if len(tests) == 1 else "(" + " & ".join(tests) + ")"

    def _expr_Select(self, node: ir.Select) -> str:
        dtype = self._seen(node).dtype
        return (f"(({self._expr(node.test)}) ? {self._typed(node.body, dtype)} "
                f": {self._typed(node.orelse, dtype)})")

    def _expr_SumTo(self, node: ir.SumTo) -> str:
        """A gradient's sum back to one value (`recur.compile.adjoint`): the operand for
        every lane of its own, added in lane order before the lane loop."""
        if node.shape != () or self.target != ():
            raise Unsupported("a gradient's sum over the lanes a value was broadcast to, "
                              "to a shape other than one value")
        dtype = self._seen(node).dtype
        if dtype not in _FLOAT_DTYPES:
            raise Unsupported(f"a gradient's sum of {dtype} values")
        shape = self._seen(node.operand).shape
        self.products += 1
        total = self.args.add(("product", self.products), numpy.zeros((1, 1), dtype=dtype))
        saved = self.target, self.lane
        self.target, self.lane = shape, "j"
        operand = self._typed(node.operand, dtype)
        self.target, self.lane = saved
        self.before += [
            f"        a{total}[0] = 0;",
            f"        for (int64_t j = 0; j < {math.prod(shape)}; j++) a{total}[0] += {operand};",
        ]
        return f"a{total}[0]"

    def _expr_Call(self, node: ir.Call) -> str:
        dtype, func, args = self._seen(node).dtype, node.func, node.args
        if func == "reshape":
            return self._reshaped(node)
        folds = func in ("min", "max", "minimum", "maximum") and len(args) > 1
        if node.axis is not None or (FUNCTIONS[func].kind != "elementwise" and not folds):
            raise Unsupported(f"{func}(), which mixes lanes")
        if func in _EXACT_FUNCTIONS:
            return self._exact_call(func, args[0], dtype)
        kind = "d" if dtype == "float64" else "f" if dtype == "float32" else "i"
        work = {"d": "float64", "f": "float32", "i": "int64"}[kind]
        if folds or func == "clip":
            names = ["min", "max"] if func == "clip" else ["min" if "min" in func else "max"]
            typed = [self._int_operand(arg, dtype) if kind == "i" else self._typed(arg, work)
                     for arg in args]
            if func == "clip":
                code = f"r_min_{kind}(r_max_{kind}({typed[0]}, {typed[1]}), {typed[2]})"
            else:
                code = typed[0]
                for item in typed[1:]:
                    code = f"r_{names[0]}_{kind}({code}, {item})"
            return self._cast(code, work, dtype)
        if func == "where":  # a call: both values are computed (and may fault), as in NumPy
            picks = [self._cast(self._int_operand(arg, dtype), "int64", dtype)
                     if dtype in _INT_DTYPES else self._typed(arg, dtype) for arg in args[1:]]
            return f"r_where_{dtype}((bool)({self._expr(args[0])}), {picks[0]}, {picks[1]})"
        if func in ("isnan", "isfinite"):
            if self._seen(args[0]).dtype not in _FLOAT_DTYPES:
                return "false" if func == "isnan" else "true"
            return f"((bool){func}({self._expr(args[0])}))"
        if dtype in _INT_DTYPES or dtype == "bool":
            if func == "abs" and dtype in _INT_DTYPES:
                return self._int_result(f"r_abs({self._typed(args[0], 'int64')}, status)", dtype)
            if func == "sign" and dtype in _INT_DTYPES:
                return self._cast(f"r_sign_i({self._typed(args[0], 'int64')})", "int64", dtype)
            if func in ("floor", "ceil", "trunc", "abs"):  # whole numbers already
                return self._typed(args[0], dtype)
            raise Unsupported(f"{func}() on {dtype}")
        if func == "sign":
            return f"r_sign_{kind}({self._typed(args[0], dtype)})"
        own = self.own_functions.get((func, dtype))
        if own is not None:
            self.helpers[own[0]] = own[1]
            return f"{own[0]}({self._typed(args[0], dtype)})"
        c_name = FUNCTIONS[func].c
        if c_name is None:
            raise Unsupported(f"the function {func}(), which has no C name in "
                              "recur.lang.functions")
        name = c_name + ("" if dtype == "float64" else "f")
        return f"{name}({', '.join(self._typed(arg, dtype) for arg in args)})"

    def _reshaped(self, node: ir.Call) -> str:
        """`reshape(v, ...)` read by the lanes of a larger value (a gradient's outer
        product): the element of v in the same place of the flat order, read where the
        reshaped value's element for this lane is."""
        value = node.args[0]
        seen, source = self._seen(node), self._seen(value)
        if math.prod(seen.shape) != math.prod(source.shape):
            raise Unsupported("reshape() that changes the number of elements")
        lane = self._column(seen.shape)
        saved = self.target, self.lane
        self.target, self.lane = source.shape, f"({lane})"
        code = self._typed(value, seen.dtype)
        self.target, self.lane = saved
        return code

    def _exact_call(self, func: str, arg: ir.Node, dtype: str) -> str:
        """A cast, or a part of a real number: exact, so with the interpreter's bits."""
        have = self._seen(arg).dtype
        if func in ("real", "conj"):  # of a real value: the value (in NumPy's dtype)
            return self._typed(arg, dtype)
        if func == "imag":  # zero, after the value (which may fault) is computed
            return f"((void)({self._expr(arg)}), ({self.types[dtype]})0)"
        if func == "angle":  # 0 or pi, as NumPy's arctan2(0, x)
            return f"{'atan2' if dtype == 'float64' else 'atan2f'}(0, {self._typed(arg, dtype)})"
        if dtype == "bool":
            return f"(({self._expr(arg)}) != 0)"
        if dtype in _INT_DTYPES and have in _FLOAT_DTYPES:
            self.checked = True
            limit = truncation_limit(dtype)
            return self._cast(f"r_trunc_i((double)({self._expr(arg)}), {limit!r}, status)",
                              "int64", dtype)
        if dtype in _INT_DTYPES and have in _INT_DTYPES and not numpy.can_cast(have, dtype):
            return self._int_result(self._typed(arg, "int64"), dtype)
        return self._typed(arg, dtype)


def _no_bool_arithmetic(dtype: str) -> None:
    if dtype == "bool":
        raise Unsupported("arithmetic on booleans")


def _promoted(left: ir.Type, right: ir.Type) -> str:
    """The dtype NumPy compares two values in (a Python number is weak, NEP 50)."""
    def operand(seen: ir.Type) -> Any:
        if seen.python:
            return {"bool": False, "int64": 0, "float64": 0.0}[seen.dtype]
        return numpy.dtype(seen.dtype)

    common = numpy.result_type(operand(left), operand(right))
    if common.kind in "iu" and (left.python or right.python):  # NumPy compares the
        return "int64"  # Python int's own value, even one outside the array's dtype
    return str(common)


def _int(value: int) -> str:
    if value == INT64_MIN:
        return "INT64_MIN"
    return f"INT64_C({value})"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise Unsupported("an integer beyond int64")
        return _int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NAN"
        if math.isinf(value):
            return "INFINITY" if value > 0 else "(-INFINITY)"
        return repr(value)
    raise Unsupported(f"{type(value).__name__} literals")
