"""The live snapshot: a small, atomically replaced file that `evodevo view` reads.

The run never waits for the viewer. Between chunks the runner calls
`SnapshotWriter.maybe_write`, which keeps short per-slot histories (actions, learning
metrics) and, at most every `run.snapshot_every_s` seconds, writes `RUN_DIR/snapshot.npz`
by writing a temporary file in the same directory and `os.replace`-ing it, so a reader
sees either the previous snapshot or the new one, never a partial file.

Contents of snapshot.npz (numpy arrays, no pickles):
    meta              0-d str: JSON (step, time, counters, recent lives, pool summary, rates)
    env/<path>        the Craftax EnvState leaves of the shown slots, keyed by their
                      pytree path (`jax.tree_util.keystr`), integer leaves stored in the
                      smallest dtype that holds them, large float leaves as float16 (the
                      viewer casts back to the EnvState's dtypes)
    slots/<name>      agent_id, birth_step, parents of the shown slots
    hist/<name>       [H, K] recent per-step values of the shown slots, oldest first:
                      `action` and every learning metric; `meta["hist_len"]` rows are valid
    genome/<name>     `Simulation.genome_arrays` of the shown slots: the genome arrays and each
                      slot's lifetime fitness so far, "fitness" (absent for random agents)

"Shown slots" are the first `max_slots` (64) slots: the viewer draws at most that many
worlds, and a 4096-slot GPU run must not write 85 MB a second. Over several hosts every process
collects a snapshot when one falls due on any (the collection gathers from all) and process 0
writes it (world/hosts.py).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from evodevo.world import hosts

log = logging.getLogger(__name__)

SNAPSHOT = "snapshot.npz"
FORMAT = 1
MAX_SLOTS = 64  # slots whose worlds are stored (and drawn)
HISTORY = 64  # per-slot steps of actions and metrics kept


class SnapshotError(RuntimeError):
    """A snapshot that cannot be read or does not match the run's configuration."""


# --------------------------------------------------------------------------- host-side data


@dataclass(frozen=True)
class Snapshot:
    """Everything the viewer draws, as host numpy arrays (live snapshot or checkpoint)."""

    meta: dict
    env: dict  # keystr -> [K, ...] leaves of the batched Craftax EnvState
    slots: dict  # agent_id/birth_step/parents -> [K, ...]
    hist: dict = field(default_factory=dict)  # "action" and metric names -> [H, K], oldest first
    genome: dict = field(default_factory=dict)  # name -> [K, ...]

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def n_shown(self) -> int:
        return int(len(self.slots["agent_id"]))


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (np.ndarray, jax.Array)):
        return np.asarray(x).tolist()
    return str(x)


def _small(x: np.ndarray) -> np.ndarray:
    """Store an integer array losslessly in the smallest dtype that holds its values, and a
    large float array (full Craftax's light maps) as float16: the viewer only draws them."""
    if x.dtype == np.float32 and x.size >= 65536:
        return x.astype(np.float16)
    if x.dtype.kind not in "iu" or x.size == 0 or x.dtype.itemsize == 1:
        return x
    lo, hi = int(x.min()), int(x.max())
    for dt in (np.uint8, np.int8, np.int16, np.int32):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return x.astype(dt) if np.dtype(dt).itemsize < x.dtype.itemsize else x
    return x


@functools.partial(jax.jit, static_argnums=1)
def _head(tree, k: int):
    """Fresh device copies of the first `k` rows of every leaf (never aliases the input)."""
    return jax.tree.map(lambda x: x[:k], tree)


def collect(sim, state, k: int) -> tuple[dict, dict]:
    """(arrays, meta) of the first `k` slots of a SimState; shared by live snapshots and checkpoints."""
    env = jax.tree_util.tree_flatten_with_path(state.world.env)[0]
    arrays = {f"env/{jax.tree_util.keystr(p)}": x for p, x in env}
    arrays["slots/agent_id"] = state.slots.agent_id
    arrays["slots/birth_step"] = state.slots.birth_step
    arrays["slots/parents"] = state.slots.parents
    for name, x in sim.genome_arrays(state).items():
        arrays[f"genome/{name}"] = x
    # Copy the shown slots on the device first, then fetch the copies. Fetching the state's own
    # buffers would pin them to host numpy views, and the runner's next chunk could then not
    # donate them (XLA would allocate and copy instead: a measurable slowdown of the run).
    arrays = {name: _small(np.asarray(x)) for name, x in hosts.fetch(_head(arrays, k)).items()}
    from evodevo.world.craftax_world import Cause

    deaths = np.asarray(hosts.fetch(state.deaths))
    meta = {
        "format": FORMAT,
        "step": int(state.step),
        "n_slots": int(sim.n),
        "n_shown": int(k),
        "env_name": sim.cfg.world.env,
        "agents_kind": sim.cfg.agents.kind,
        "max_age": int(sim.cfg.world.max_age),
        "births": int(state.births),
        "deaths": {c.name: int(deaths[c]) for c in Cause if c != Cause.alive},
        "pool": json.loads(json.dumps(sim.pool_summary(state), default=_json_default)),  # numpy scalars -> JSON
    }
    return arrays, meta


def save_npz_atomic(path: Path, arrays: dict) -> None:
    """Write `arrays` as an uncompressed .npz next to `path`, then atomically replace `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read_snapshot(path) -> Snapshot | None:
    """The snapshot at `path`, or None if there is none. Raises SnapshotError if unreadable."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {name: z[name] for name in z.files}
    except FileNotFoundError:
        return None
    except Exception as e:  # a foreign or damaged file: the writer never leaves a partial one
        raise SnapshotError(f"cannot read snapshot {path}: {type(e).__name__}: {e}") from None
    return from_arrays(data)


def from_arrays(data: dict) -> Snapshot:
    try:
        meta = json.loads(str(data.pop("meta")))
    except (KeyError, json.JSONDecodeError) as e:
        raise SnapshotError(f"snapshot has no valid meta record ({e})") from None
    if meta.get("format") != FORMAT:
        raise SnapshotError(f"snapshot format {meta.get('format')} is not {FORMAT}; update evodevo")
    groups: dict[str, dict] = {"env": {}, "slots": {}, "hist": {}, "genome": {}}
    for name, x in data.items():
        group, _, key = name.partition("/")
        if group in groups:
            if group in ("slots", "genome") and x.dtype.kind in "iu":
                x = x.astype(np.int64)  # stored small; arithmetic on ids and steps must not wrap
            groups[group][key] = x
    return Snapshot(meta=meta, **groups)


# --------------------------------------------------------------------------- the writer


class SnapshotWriter:
    """Writes RUN_DIR/snapshot.npz at most every `every_s` seconds; never raises into the run."""

    def __init__(self, run_dir, every_s: float, max_slots: int = MAX_SLOTS, history: int = HISTORY):
        self.path = Path(run_dir) / SNAPSHOT
        self.every_s = float(every_s)
        self.max_slots = int(max_slots)
        self.history = int(history)
        self.started = time.time()
        self._next = 0.0  # monotonic time of the next write; the first chunk writes at once
        self._hist: dict[str, np.ndarray] = {}
        self._filled = 0
        self._last = None  # (monotonic time, step, births, deaths) of the previous write
        self._warned = False
        self.writes = 0
        self.write_s = 0.0  # total seconds spent writing (benchmarks)

    # ---------------------------------------------------------------- per chunk

    def _record(self, out: dict, n: int) -> None:
        """Append the chunk's first `n` steps of the shown slots to the per-slot histories."""
        k, h = self.max_slots, self.history
        rows = {"action": np.asarray(out["action"])[:n, :k]}
        for name, v in (out.get("metrics") or {}).items():
            rows[name] = np.asarray(v, dtype=np.float32)[:n, :k]
        for name, r in rows.items():
            old = self._hist.get(name)
            if old is None:
                fill = -1 if name == "action" else np.nan
                old = np.full((h, r.shape[1]), fill, dtype=np.int8 if name == "action" else np.float32)
            self._hist[name] = np.concatenate([old, r.astype(old.dtype)])[-h:]
        self._filled = min(h, self._filled + n)

    def maybe_write(self, runner, out: dict, n: int, final: bool = False) -> bool:
        """Called after every chunk; `final` on the last chunk of a run (its end state is always
        written, so the viewer of a finished run shows where it ended). True if one was written."""
        try:
            self._record(out, n)
            if not hosts.anywhere(time.monotonic() >= self._next or final):
                return False
            self.write(runner)
            self._next = time.monotonic() + self.every_s
            return True
        except Exception as e:  # the run never dies for the viewer
            if not self._warned:
                self._warned = True
                if isinstance(e, OSError):
                    log.warning("live snapshot not written to %s: %s (further failures are silent)", self.path, e)
                else:
                    log.warning("live snapshot writer failed (further failures are silent)", exc_info=True)
            return False

    def write(self, runner) -> None:
        t0 = time.perf_counter()
        state = runner.state
        k = min(self.max_slots, runner.sim.n)
        arrays, meta = collect(runner.sim, state, k)
        now = time.monotonic()
        step, births, deaths = meta["step"], meta["births"], sum(meta["deaths"].values())
        rates = {}
        if self._last is not None:
            t_prev, step_prev, births_prev, deaths_prev = self._last
            dt = now - t_prev
            if dt > 0 and step >= step_prev:
                rates = {
                    "steps_per_s": (step - step_prev) / dt,
                    "agent_steps_per_s": (step - step_prev) * runner.sim.n / dt,
                    "births_per_s": (births - births_prev) / dt,
                    "deaths_per_s": (deaths - deaths_prev) / dt,
                }
        self._last = (now, step, births, deaths)
        meta.update(
            time=time.time(),
            writer_started=self.started,
            every_s=self.every_s,
            hist_len=self._filled,
            rates=rates,
            recent=runner.recent.summary(),
        )
        for name, x in self._hist.items():
            arrays[f"hist/{name}"] = x
        arrays["meta"] = np.array(json.dumps(meta, default=_json_default))
        if hosts.primary():
            save_npz_atomic(self.path, arrays)
        self.writes += 1
        self.write_s += time.perf_counter() - t0
