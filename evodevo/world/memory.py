"""How much memory a run's state needs, checked before anything is allocated or written."""

from __future__ import annotations

import math
import os

import jax
import numpy as np

from evodevo.config import ConfigError
from evodevo.world.checkpoint import format_bytes
from evodevo.world.sim import Simulation


def state_bytes(sim: Simulation) -> tuple[int, int]:
    """(bytes of the SimState of `sim`, bytes per slot: the slot-indexed fields' arrays with a slot axis,
    not the gene pool and the counters, which do not grow with world.n_slots, even where a counter's
    length equals it), from its shapes (`Simulation.template`): nothing is allocated."""
    shapes = sim.template()
    slotted = [getattr(shapes, f) for f in ("world", "agents", "genomes", "slots", "action", "fresh", "carry")]
    per_slot = sum(_bytes(x) for x in jax.tree.leaves(slotted) if x.ndim and x.shape[0] == sim.n)
    return sum(_bytes(x) for x in jax.tree.leaves(shapes)), per_slot // sim.n


def _bytes(x) -> int:
    return math.prod(x.shape) * np.dtype(x.dtype).itemsize


def available_memory() -> int | None:
    """Bytes free where the state will live: the accelerator's memory, else the host's MemAvailable."""
    try:
        stats = jax.local_devices()[0].memory_stats()  # None on CPU
    except Exception:  # noqa: BLE001 - a backend without memory statistics
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(sim: Simulation) -> None:
    """Refuse a run whose state alone cannot fit in memory (else: an out-of-memory traceback
    after minutes of compiling)."""
    cfg = sim.cfg
    need, per_slot = state_bytes(sim)
    have = available_memory()
    if have is not None and need > have:
        raise ConfigError(
            f"world.n_slots={cfg.world.n_slots:,} needs about {format_bytes(need)} for the simulation state alone "
            f"({format_bytes(per_slot)} per slot) but {format_bytes(have)} of memory is available; "
            f"lower world.n_slots"
        )
