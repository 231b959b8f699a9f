"""How much memory this process may still take, and how much of it a run may use.

The OS's available memory is not the only bound: a per-process limit (`ulimit -v`,
`ulimit -d`, `prlimit`) or a container's cgroup can be far tighter, and NumPy then
fails with a `MemoryError` (or the kernel's OOM killer ends the process, without a
message) long after the run started. `host_room` reads them all and returns the
tightest; `usable` keeps a margin of it free (docs/robustness.md, Memory).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from recur.diagnostics import RunError, option

# Kept free of every limit: a tenth of it, at least MARGIN_FLOOR. What a run takes
# beyond its kept outputs (measured, docs/robustness.md): SciPy when first used
# (120 MB of address space), the sub-expressions swept ahead of the loop (64 MB each
# at most), the CSV writer's block (12 to 17 MB), the engines' own (40 MB); and the
# available memory is an estimate that other processes and the page cache of the file
# being written draw on while the run goes.
MARGIN_FLOOR = 512 * 2**20
MARGIN_FRACTION = 0.1


# Outputs this small fit anywhere recur runs: asking the OS (a tenth of a millisecond,
# a noticeable part of a small run) is not worth it.
ALWAYS_AVAILABLE = 16 * 2**20


@dataclass(frozen=True, slots=True)
class Room:
    """Bytes that can still be taken before `source` refuses them (or kills the process)."""

    size: int
    source: str

    def margin(self) -> int:
        return max(int(self.size * MARGIN_FRACTION), MARGIN_FLOOR)

    def usable(self) -> int:
        """What a run may plan to keep: the room less the margin."""
        return max(self.size - self.margin(), 0)


def host_room() -> Room | None:
    """The tightest bound on the host memory this process may still take; None where
    none can be read (not Linux, and no `sysconf` either)."""
    rooms = [room for room in (_available(), *_rlimit_rooms(), *cgroup_rooms())
             if room is not None]
    return min(rooms, key=lambda room: room.size, default=None)


def _available() -> Room | None:
    """Linux's MemAvailable: free memory plus what the kernel can reclaim at once."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return Room(int(line.split()[1]) * 1024,
                                "the system's available memory (MemAvailable)")
    except (OSError, ValueError, IndexError):
        pass
    try:
        return Room(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"),
                    "the system's free memory")
    except (ValueError, OSError, AttributeError):
        return None


def _rlimit_rooms() -> Iterator[Room]:
    """The address-space and data-size limits (soft), less what the process maps now
    (/proc/self/statm: its whole size; its data and stack), read only where one is set."""
    limits = [(soft, mapped, name) for limit, mapped, name in (
        (resource.RLIMIT_AS, "size", "address-space limit (ulimit -v)"),
        (resource.RLIMIT_DATA, "data", "data-size limit (ulimit -d)"))
        if (soft := resource.getrlimit(limit)[0]) != resource.RLIM_INFINITY]
    if not limits:
        return
    pages = _mapped_pages()
    page = resource.getpagesize()
    for soft, mapped, name in limits:
        yield Room(max(soft - pages[mapped] * page, 0), f"the process's {name}")


def _mapped_pages() -> dict[str, int]:
    """The pages the process maps now, in all ("size") and for data and stack ("data")."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            fields = statm.read().split()
        return {"size": int(fields[0]), "data": int(fields[5])}
    except (OSError, ValueError, IndexError):
        return {"size": 0, "data": 0}


def cgroup_rooms(proc: str = "/proc/self") -> Iterator[Room]:
    """For the process's cgroup and each one above it: its limit less its usage, not
    counting the page cache it can drop (`inactive_file`, as `docker stats` counts).
    cgroup v2's `memory.max`, v1's `memory.limit_in_bytes`; `proc` is for tests."""
    for folder, version in _cgroup_folders(proc):
        limit_name, usage_name, cache_name = _CGROUP_FILES[version]
        limit = _read_int(os.path.join(folder, limit_name))
        usage = _read_int(os.path.join(folder, usage_name))
        if limit is None or usage is None:
            continue
        usage -= min(_stat_entry(os.path.join(folder, "memory.stat"), cache_name), usage)
        yield Room(max(limit - usage, 0), f"the cgroup's {limit_name}")


_CGROUP_FILES = {
    2: ("memory.max", "memory.current", "inactive_file"),
    1: ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
}


def _cgroup_folders(proc: str) -> Iterator[tuple[str, int]]:
    """The folders of the process's memory cgroups, from its own up to each mount's root."""
    try:
        with open(os.path.join(proc, "cgroup"), encoding="utf-8") as lines:
            memberships = [line.rstrip("\n").split(":", 2) for line in lines]
        with open(os.path.join(proc, "mountinfo"), encoding="utf-8") as lines:
            mounts = [_mount(line) for line in lines]
    except OSError:
        return
    for fields in memberships:
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        version = 2 if controllers == "" else 1 if "memory" in controllers.split(",") else 0
        for root, point in (mount[:2] for mount in mounts if mount and mount[2] == version):
            if path == root or path.startswith(root.rstrip("/") + "/"):
                yield from ((folder, version) for folder in _upwards(point, path[len(root):]))


def _mount(line: str) -> tuple[str, str, int] | None:
    """(root, mount point, cgroup version) of a /proc/self/mountinfo line, or None for a
    mount that is no memory cgroup."""
    before, _, after = line.partition(" - ")
    fields, described = before.split(), after.split()
    if len(fields) < 5 or len(described) < 3:
        return None
    kind, options = described[0], described[2].split(",")
    version = 2 if kind == "cgroup2" else 1 if kind == "cgroup" and "memory" in options else 0
    return (_unescape(fields[3]), _unescape(fields[4]), version) if version else None


def _unescape(field: str) -> str:
    """mountinfo writes a space, tab, line break and backslash in a path as octal."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


def _upwards(point: str, relative: str) -> Iterator[str]:
    parts = [part for part in relative.split("/") if part]
    for depth in range(len(parts), -1, -1):
        yield os.path.join(point, *parts[:depth])


def _read_int(path: str) -> int | None:
    """An integer file of the cgroup tree; None where absent or "max" (no limit)."""
    try:
        with open(path, encoding="ascii") as file:
            return int(file.read().strip())
    except (OSError, ValueError):
        return None


def _stat_entry(path: str, key: str) -> int:
    try:
        with open(path, encoding="ascii") as file:
            for line in file:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def fitting_hint() -> str:
    """How to make a run need less memory, in the words of whoever speaks (library or CLI)."""
    return (f"write the outputs to a Zarr store while the run goes "
            f"({option('store', 'out.zarr')}), keep every K-th step ('keep: every K', "
            f"{option('every', 'K')}) or the final N ('keep: last N'); keep only final "
            f"states with {option('last', True)}, or 'keep: last' on outputs you do not "
            f"need whole; or run fewer {option('steps')}")


def out_of_memory(exc: MemoryError) -> RunError:
    """The refusal for an allocation that failed anyway, wherever it happened."""
    detail = str(exc).splitlines()[0] if str(exc) else "an allocation failed"
    return RunError(f"the run does not fit in the memory available: {detail}",
                    notes=(fitting_hint(),))


def check_outputs_fit(sizes: Mapping[str, int], backend: Any) -> None:
    """Refuse, before allocating, a run whose outputs cannot fit in memory: on the device,
    and on the host, where they come back; leaving a margin free (`Room.usable`)."""
    needed = sum(sizes.values())
    if needed <= ALWAYS_AVAILABLE:
        return
    rooms = [backend.memory_room(), *([] if backend.name == "cpu" else [host_room()])]
    for room in rooms:
        if room is not None and needed > room.usable():
            parts = ", ".join(f"{name}: {format_bytes(size)}" for name, size in sizes.items())
            raise RunError(
                f"the outputs need {format_bytes(needed)} ({parts}), more than the "
                f"{format_bytes(room.usable())} of memory available: "
                f"{format_bytes(room.size)} under {room.source}, less "
                f"{format_bytes(room.margin())} kept free",
                notes=(fitting_hint(),),
            )


def format_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")
