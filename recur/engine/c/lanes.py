"""The lane loop: each lane walks every step with the taps of every output in registers.

On CUDA (`recur.engine.cuda.generate`) a lane is a thread; on the CPU this is the kernel for specs
whose states are single values, where the C engine's usual loop (all lanes of one step,
then the next step, reading taps back from memory) would make every step wait for the
store of the last one. The expressions are `recur.engine.c.generate`'s, so values are computed
with the same operations in the same order and dtypes.

Every output must have the kernel's lanes, or one element (computed by every lane
alike, written by the first). A state kept `last` goes back to its ring when the loop
stops, so that calls can be chained (progress) and the result collected as the
interpreter's.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from recur.compile import ir
from recur.diagnostics import Unsupported
from recur.engine.c.generate import (
    C_TYPES,
    OUTPUTS_PER_FUNCTION,
    PRELUDE,
    STATUS_FAULT,
    STATUS_UNTIL,
    Kernel,
    _Generator,
)
from recur.lang.keep import of as of_keep

# Checked int64 sums and differences in two's complement: the wrapped value, and the
# overflow (the operands' sign and the result's differ) or-ed into `st[0]`.
FLAGGED_ARITHMETIC = """\
R_FN r_i64 r_add_flag(r_i64 a, r_i64 b, r_i64 *st)
{ r_i64 r = (r_i64)((uint64_t)a + (uint64_t)b); st[0] |= ((a ^ r) & (b ^ r)) < 0; return r; }
R_FN r_i64 r_sub_flag(r_i64 a, r_i64 b, r_i64 *st)
{ r_i64 r = (r_i64)((uint64_t)a - (uint64_t)b); st[0] |= ((a ^ b) & (a ^ r)) < 0; return r; }
"""

# Deeper than this, an output's taps are read from its history in memory (the full
# trajectory, or the ring of a state kept 'last'), each step's value written there: a
# register per tap, all shifted every step, costs a move per tap and step and a source
# (and a compile) that grows with the depth. Measured on 2*10**7 steps of a scalar kept
# 'last' (its ring read modulo its size): registers 0.10 s against 0.15 at depth 32,
# 0.25 against 0.17 at depth 64 (docs/robustness.md, "Large specs").
REGISTER_DEPTH = 32
# The lanes of a block, which walks every step before the next block starts: their
# registers are arrays the C compiler keeps in vector registers or the first-level cache.
LANE_BLOCK = 64


class LaneGenerator(_Generator):
    """One lane per loop iteration (a thread, on CUDA), the time loop inside, the taps of
    every output in registers `s<output>_<lag>` (in memory beyond `REGISTER_DEPTH`).
    Dialects say how the function begins and how a fault or `until` leaves it."""

    index = "long long"  # the C type of t and of the status word
    t_outside = False  # whether the frame declares t (to return it) before the lane loop

    def lane_kernel(self) -> tuple[str, int]:
        """The source and the number of lanes."""
        outputs = self.program.outputs
        shapes = {o.shape for o in outputs if o.lanes != 1}
        if len(shapes) > 1:
            raise Unsupported("outputs whose states have different shapes")
        lanes = math.prod(shapes.pop()) if shapes else 1
        self.registers = {o.name: k for k, o in enumerate(outputs)}
        for output in outputs:
            one = lanes > 1 and output.lanes == 1
            if one and output.keep != "all":
                raise Unsupported(f"one-element output '{output.name}' kept 'last' beside lanes")
            if one and self._in_memory(output):
                # Every lane computes it, one writes it: the others would read its past.
                raise Unsupported(f"one-element output '{output.name}' read more than "
                                  f"{REGISTER_DEPTH} steps back beside lanes")
        body = []
        for output in outputs:
            body.extend(self._output(output))
        tests, stop = self._until()
        shifts = [f"            {self._register(k, lag)} = {self._register(k, lag - 1)};"
                  for output in outputs if not self._in_memory(output)
                  for k in [self.registers[output.name]]
                  for lag in range(self._depth(output), 0, -1)]
        if self.before:
            raise Unsupported("a value computed for all lanes before the lane loop")
        loads = [line for output in outputs for line in self._loads(output)]
        stores = [line for output in outputs for line in self._stores(output)]
        inner = [
            *loads,
            "        t = t0;" if self.t_outside else f"        {self.index} t = t0;",
            "        for (; t < t1; t++) {",
            *self._step([*body, *tests, *shifts, *stop]),
            "        }",
            *stores,
        ]
        return "\n".join(self._frame(inner)), lanes

    def _step(self, lines: list[str]) -> list[str]:
        """A step's statements, for the lanes one iteration of the time loop walks."""
        return lines

    def _frame(self, inner: list[str]) -> list[str]:
        """The function around the lane loop's body `inner`."""
        raise NotImplementedError

    def _stop_at_fault(self) -> str:
        """Leave the kernel, the step `t` recorded as the first that faulted."""
        raise NotImplementedError

    def _fault_if(self, condition: str) -> str:
        """The statement that stops at a fault where `condition` holds."""
        return f"if ({condition}) {{ {self._stop_at_fault()} }}"

    def _stop_at_until(self) -> str:
        """Record `until` at step `t`, count the step, leave the time loop."""
        raise NotImplementedError

    @staticmethod
    def _in_memory(output: ir.Output) -> bool:
        """Whether an output's taps are read from its history rather than registers."""
        return output.depth > REGISTER_DEPTH

    @staticmethod
    def _written(output: ir.Output) -> bool:
        """Whether every step's value is stored in the history as it is computed (`all`,
        `last N`, deep taps), rather than the ring's last states once the loop stops."""
        return output.keep == "all" or of_keep(output.keep).mode == "tail" or (
            LaneGenerator._in_memory(output))

    @staticmethod
    def _depth(output: ir.Output) -> int:
        """Registers behind this step's value: the taps, and one for a ring's last state."""
        return output.depth if LaneGenerator._written(output) else max(output.depth, 1)

    def _output(self, output: ir.Output) -> list[str]:
        value = self._step_value(output)
        register = self._register(self.registers[output.name], 0)
        lines = [f"            {register} = {value};"]
        if self.checked:
            lines.append(f"            {self._fault_if('status[0] != 0')}")
        if self.program.check_finite and output.dtype in ("float32", "float64"):
            lines.append(f"            {self._fault_if(f'!isfinite({register})')}")
        if self._written(output):
            lines.append(f"            {self._first(output)}{self._cell(output.name, 0, 't')} = "
                         f"{register};")
        column = "0" if output.lanes == 1 else "i"
        lines.extend(f"            {line}" for line in self._keep_every(output, register, column))
        return lines

    def _cell(self, name: str, lag: int, t: str) -> str:
        rows = self._history(name)
        column = "0" if self.program.output(name).lanes == 1 else "i"
        return f"a{rows}[({self._row(name, lag, t)}) * dims[{2 * rows + 1}] + {column}]"

    @staticmethod
    def _first(output: ir.Output) -> str:
        """Only the first thread writes a one-element state (every thread computes it)."""
        return "if (i == 0) " if output.lanes == 1 else ""

    def _loads(self, output: ir.Output) -> list[str]:
        c_type, k = self.types[output.dtype], self.registers[output.name]
        depth = output.depth
        lines = [f"        {c_type} s{k}_0;"]
        if self._in_memory(output):
            return lines
        for lag in range(1, self._depth(output) + 1):
            value = self._cell(output.name, lag, "t0") if lag <= depth else "0"
            lines.append(f"        {c_type} s{k}_{lag} = {value};")
        return lines

    def _stores(self, output: ir.Output) -> list[str]:
        """A ring's last states go back to it, where the next launch or `collect` reads."""
        if self._written(output):
            return []
        k, depth = self.registers[output.name], output.depth
        lines = []
        for lag in range(1, self._depth(output) + 1):
            store = (f"{self._first(output)}{self._cell(output.name, lag, 't')} = "
                     f"{self._register(k, lag)};")
            if lag > depth:  # a register that holds a state only once a step has run
                store = f"if (t > t0) {{ {store} }}"
            lines.append(f"        {store}")
        return lines

    def _until(self) -> tuple[list[str], list[str]]:
        """The test of `until` (before the taps shift) and the stop (after them)."""
        if self.program.until is None:
            return [], []
        self.target = ()
        self.checked = False
        tests = [f"            bool stop = (bool)({self._expr(self.program.until)});"]
        if self.checked:
            tests.append(f"            if (status[0] != 0) {{ {self._stop_at_fault()} }}")
        return tests, [f"            if (stop) {{ {self._stop_at_until()} }}"]

    def _tap(self, name: str, lag: int) -> str:
        output = self.program.output(name)
        if output.lanes != 1 and output.shape != self.target:
            raise Unsupported(f"a state of shape {output.shape} is read by lanes {self.target}")
        if lag > 0 and self._in_memory(output):
            return self._cell(name, lag, "t")
        return self._register(self.registers[name], lag)

    def _register(self, k: int, lag: int) -> str:
        """The register of the k-th output's state `lag` steps back."""
        return f"s{k}_{lag}"

    def _matrix_vector(self, node: ir.Binary) -> str:
        raise Unsupported("matrix products, which mix lanes")


class _HostLaneGenerator(LaneGenerator):
    """The C dialect, with the native engine's calling convention (`recur.engine.c.native`)."""

    types = C_TYPES
    index = "int64_t"
    t_outside = True

    def _frame(self, inner: list[str]) -> list[str]:
        lanes = self._lanes(inner)  # first: it may name arguments the declarations list
        declarations = self._declarations(range(len(self.args.values)))
        return [
            PRELUDE + "".join(self.helpers.values()),
            "int64_t kernel(int64_t t0, int64_t t1, int64_t *result, int64_t steps,",
            "               void **args, const int64_t *dims) {",
            "    (void)steps; (void)dims;",
            *declarations,
            "    int64_t t = t0;",
            *lanes,
            "    return t;",
            "}",
            "",
        ]

    def _lanes(self, inner: list[str]) -> list[str]:
        """The loop over the lanes around `inner`: the one lane, here."""
        return ["    for (int64_t i = 0; i < 1; i++) {", "        int64_t status[1] = {0};",
                *inner, "    }"]

    def _stop_at_fault(self) -> str:
        return f"result[0] = {STATUS_FAULT}; result[1] = t; return t;"

    def _stop_at_until(self) -> str:
        return f"result[0] = {STATUS_UNTIL}; result[1] = t; t++; break;"


class _HostBlockGenerator(_HostLaneGenerator):
    """The C lane kernel for states with lanes: the lanes in blocks of `LANE_BLOCK`, each
    block walking every step, and inside a step a loop over the block's lanes that the C
    compiler vectorises (the lanes are independent: element-wise steps).

    A lane's registers are the elements of arrays of a block's lanes; what is the same at
    every step (params, hoisted values, which element of a broadcast value a lane reads)
    is loaded into such arrays once per block, before the time loop. A fault or a
    non-finite value under `--check` marks the step (`bad`) rather than leaving the lane
    loop, which would keep it from being vectorised; the kernel stops after that step,
    and the interpreter replays the run to report it. `until` stops all lanes at once,
    so it stays with the loop over all lanes of a step (`recur.engine.c.generate`).
    """

    # Sums and differences that wrap and flag an overflow, where `__builtin_add_overflow`
    # kept GCC 12 from vectorising (W8: 97 ms against 29 ms).
    checked_calls: ClassVar[dict[str, str]] = {
        **_Generator.checked_calls, "+": "r_add_flag", "-": "r_sub_flag"}

    def __init__(self, program: ir.Program, xp: Any) -> None:
        super().__init__(program, xp, batch_draws=True)  # before the lanes' loop, a step's
        self.helpers["r_add_flag"] = FLAGGED_ARITHMETIC
        self.preloads: list[str] = []  # statements before a block's time loop
        self.preloaded: dict[str, str] = {}  # code read per lane -> what reads it loaded

    def lane_kernel(self) -> tuple[str, int]:
        if self.program.until is not None:
            raise Unsupported("until with lanes: it stops every lane at the same step")
        return super().lane_kernel()

    def _lanes(self, inner: list[str]) -> list[str]:
        lanes = f"dims[{2 * self._history(self._widest()) + 1}]"
        return [
            f"    for (int64_t i0 = 0; i0 < {lanes}; i0 += {LANE_BLOCK}) {{",
            f"        const int64_t count = {lanes} - i0 < {LANE_BLOCK} ? {lanes} - i0 : "
            f"{LANE_BLOCK};",
            *self.preloads,
            *inner,
            "    }",
        ]

    def _widest(self) -> str:
        return next(o.name for o in self.program.outputs if o.lanes != 1)

    def _step(self, lines: list[str]) -> list[str]:
        return [
            *self._fills(),
            "            r_i64 bad = 0;",
            "            for (int64_t ln = 0; ln < count; ln++) {",
            "                const int64_t i = i0 + ln;",
            "                int64_t status[1] = {0};",
            *(f"    {line}" for line in lines),
            "            }",
            f"            if (bad) {{ result[0] = {STATUS_FAULT}; result[1] = t; return t; }}",
        ]

    def _fills(self) -> list[str]:
        """The draws of the block's lanes at this step, made before their loop: once for
        a call read by several outputs (a gradient's replayed draws)."""
        return [f"            {line}" for line in dict.fromkeys(self.fills)]

    def _stop_at_fault(self) -> str:
        raise AssertionError("a block's lanes mark a fault (`_fault_if`), never leave")

    def _fault_if(self, condition: str) -> str:
        # A branch would keep the C compiler from vectorising the lane loop.
        return f"bad |= ({condition});"

    def _register(self, k: int, lag: int) -> str:
        return f"s{k}_{lag}[ln]"

    def _per_lane(self, lines: list[str]) -> list[str]:
        """Statements for each lane of the block, outside the time loop."""
        return ["        for (int64_t ln = 0; ln < count; ln++) {",
                "            const int64_t i = i0 + ln;",
                *(f"            {line.strip()}" for line in lines), "        }"]

    def _loads(self, output: ir.Output) -> list[str]:
        c_type, k = self.types[output.dtype], self.registers[output.name]
        depth = 0 if self._in_memory(output) else self._depth(output)
        arrays = ", ".join(f"s{k}_{lag}[{LANE_BLOCK}]" for lag in range(depth + 1))
        values = [f"{self._register(k, lag)} = "
                  f"{self._cell(output.name, lag, 't0') if lag <= output.depth else '0'};"
                  for lag in range(1, depth + 1)]
        return [f"        {c_type} {arrays};", *(self._per_lane(values) if values else [])]

    def _stores(self, output: ir.Output) -> list[str]:
        stores = super()._stores(output)
        return self._per_lane(stores) if stores else []

    def _column(self, shape: tuple[int, ...]) -> str:
        """Which element a lane reads: where that takes arithmetic, an array of the
        block's lanes' elements, computed once per block."""
        column = super()._column(shape)
        if column in (self.lane, "0") or self.lane != "i":
            return column
        return self._preload("int64_t", column, single=False)

    def _constant(self, key: Any, value: Any) -> str:
        code = super()._constant(key, value)
        if self.lane != "i":
            return code
        array = self.xp.asarray(value)
        return self._preload(self.types[str(array.dtype)], code, single=array.size == 1)

    def _preload(self, c_type: str, code: str, single: bool) -> str:
        """`code`, the same at every step, read from a value loaded before the time loop:
        one for the block where it is `single`, else an array of its lanes' (read inside
        the loop, even a value behind a `restrict` pointer kept GCC from vectorising)."""
        if code not in self.preloaded:
            name = f"p{len(self.preloaded)}"
            self.preloaded[code] = name if single else f"{name}[ln]"
            if single:
                self.preloads.append(f"        const {c_type} {name} = {code};")
            else:
                self.preloads += [f"        {c_type} {name}[{LANE_BLOCK}];",
                                  *self._per_lane([f"{name}[ln] = {code};"])]
        return self.preloaded[code]


def generate_host(program: ir.Program, xp: Any) -> Kernel:
    """The C lane kernel for a program whose steps are element-wise per lane (one lane,
    or blocks of lanes), or `Unsupported`."""
    if len(program.outputs) > OUTPUTS_PER_FUNCTION:  # registers cannot be split
        raise Unsupported("more outputs than one C function compiles quickly")
    lanes = any(o.lanes != 1 for o in program.outputs)
    generator = _HostBlockGenerator(program, xp) if lanes else _HostLaneGenerator(program, xp)
    source, _ = generator.lane_kernel()
    return Kernel(source, tuple(generator.args.values), LANE_BLOCK if lanes else 0)
