"""How much memory a run's state needs, checked before anything is allocated or written."""

from __future__ import annotations

import dataclasses
import functools
import math
import os

import jax
import numpy as np

from evodevo.config import Config, ConfigError, RunConfig
from evodevo.world.checkpoint import format_bytes
from evodevo.world.sim import Simulation


@functools.lru_cache(maxsize=8)
def _state_bytes(cfg: Config) -> int:
    shapes = jax.eval_shape(Simulation(cfg).init)  # shapes only: nothing is allocated
    return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(shapes))


def state_bytes(cfg: Config) -> tuple[int, int]:
    """(bytes of the SimState of `cfg`, bytes per slot), from the shapes of 1 and 2 slots: the state
    is linear in world.n_slots (the gene pool does not grow with it), and tracing the world
    generation of a huge slot count would itself take long."""
    one, two = (_state_bytes(dataclasses.replace(cfg, world=dataclasses.replace(cfg.world, n_slots=n),
                                                 run=RunConfig(devices=1)))  # run.* does not shape the state
                for n in (1, 2))
    return one + (two - one) * (cfg.world.n_slots - 1), two - one


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


def check_memory(cfg: Config) -> None:
    """Refuse a run whose state alone cannot fit in memory (else: an out-of-memory traceback
    after minutes of compiling)."""
    need, per_slot = state_bytes(cfg)
    have = available_memory()
    if have is not None and need > have:
        raise ConfigError(
            f"world.n_slots={cfg.world.n_slots:,} needs about {format_bytes(need)} for the simulation state alone "
            f"({format_bytes(per_slot)} per slot) but {format_bytes(have)} of memory is available; "
            f"lower world.n_slots"
        )
