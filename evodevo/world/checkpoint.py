"""Checkpoints of a run's whole SimState with orbax-checkpoint (atomic, keep last k).

Over several hosts every process calls `save` and `restore` alike (orbax's own protocol: each
process writes and reads the shards it holds, process 0 the metadata and the final rename), so
the run directory must be on a file system that all hosts share.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: the message says what to do."""


class Checkpoints:
    def __init__(self, directory: Path, keep: int):
        self.directory = Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory,
            # cleanup_tmp_directories: a save cut short (a full disk, a kill) leaves a *.orbax-checkpoint-tmp
            # directory that would otherwise keep holding the space it took.
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False,
                                                 cleanup_tmp_directories=True),
            item_names=("state", "meta"),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, meta: dict) -> None:
        """Write checkpoint `step`. A failed write raises OSError (errno and cause) and leaves the
        earlier checkpoints as they are."""
        if step in self.manager.all_steps():
            return
        path = str(self.directory / str(step))
        # Refuse before orbax starts: its writer threads report a full disk with pages of tracebacks.
        need = sum(int(x.nbytes) for x in jax.tree.leaves(state)) + (1 << 20)
        free = shutil.disk_usage(self.directory).free
        if free < need:
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (a checkpoint takes up to {format_bytes(need)}, "
                                        f"{format_bytes(free)} free)", path)
        try:
            self.manager.save(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardSave(without_empty(state)), meta=ocp.args.JsonSave(meta)),
                force=True,
            )
            self.manager.wait_until_finished()
        except OSError:
            raise
        except Exception as e:  # tensorstore reports failed writes as ValueError("... [os_error_code='28']")
            code = re.search(r"os_error_code='?(\d+)", str(e))
            if code is None:
                raise
            n = int(code.group(1))
            raise OSError(n, os.strerror(n), path) from None

    def restore(self, template, step: int | None = None, shardings=None):
        """Restore (state, meta) shaped like `template` (a fresh SimState, or its shapes: `Simulation.template`),
        laid out by `shardings` (a tree like it, `Simulation.shardings`: each process reads only its shards) or,
        for None, on the default device."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.directory}; start the run with `evodevo run` instead")
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), template)
        if shardings is not None:
            abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                                    abstract, shardings)
        try:
            restored = self.manager.restore(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardRestore(without_empty(abstract)),
                                        meta=ocp.args.JsonRestore()),
            )
        except Exception as e:  # orbax raises many types for corrupt or mismatched trees
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} cannot be restored into this configuration "
                f"({type(e).__name__}: {first[:200]}); it is corrupt or from an incompatible config/version"
            ) from None
        state = jax.tree.map(lambda want, got: jax.device_put(jnp.zeros(want.shape, want.dtype), want.sharding)
                             if got is None else got, abstract, restored.state)  # the zero-size arrays left out
        if shardings is None:  # uncommitted arrays, like a fresh init's: committed ones would compile the chunk again
            state = jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), state)
        for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(abstract)):
            if got.shape != want.shape or got.dtype != want.dtype:
                raise CheckpointError(
                    f"checkpoint {self.directory / str(step)} holds {got.shape}/{got.dtype} where this config "
                    f"needs {want.shape}/{want.dtype}: it is from an incompatible config/version"
                )
        return state, dict(restored.meta), step

    def close(self):
        self.manager.close()


def without_empty(tree):
    """`tree` with its zero-size arrays (the memory of agents without memory tokens, say) as None: they hold nothing,
    orbax refuses to save them, and a restore makes them again from the template's shapes."""
    return jax.tree.map(lambda x: None if 0 in x.shape else x, tree)


def format_bytes(n: float) -> str:
    """1536 -> "1.5 KiB"."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
