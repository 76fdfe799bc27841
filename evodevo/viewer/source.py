"""Where the viewer's snapshots come from: the live snapshot file, or a checkpoint."""

from __future__ import annotations

import os
import time
from pathlib import Path

from evodevo.viewer.snapshot import SNAPSHOT, Snapshot, SnapshotError, collect, read_snapshot


class ViewError(RuntimeError):
    """A run directory or checkpoint the viewer cannot show: a one-line message."""


CONFIG = "config.yaml"


def check_run_dir(run_dir) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ViewError(f"run directory '{run_dir}' does not exist; start a run with `evodevo run --run-dir {run_dir}`")
    if not run_dir.is_dir():
        raise ViewError(f"'{run_dir}' is not a directory")
    if not (run_dir / CONFIG).is_file() and not (run_dir / SNAPSHOT).is_file():
        raise ViewError(f"'{run_dir}' is not a run directory (no {CONFIG}); start one with `evodevo run`")
    return run_dir


def load_config(run_dir: Path):
    from evodevo import config as config_mod

    try:
        return config_mod.from_dict(config_mod.read_yaml(run_dir / CONFIG))
    except FileNotFoundError:
        raise ViewError(f"'{run_dir}' has no {CONFIG}") from None
    except Exception as e:
        raise ViewError(f"{run_dir / CONFIG} cannot be loaded: {e}") from None


def snapshot_enabled(run_dir: Path) -> bool | None:
    """run.snapshot of the run's config.yaml (None if it cannot be read)."""
    try:
        return bool(load_config(run_dir).run.snapshot)
    except ViewError:
        return None


class LiveSource:
    """Polls RUN_DIR/snapshot.npz; `poll()` returns a new Snapshot when the file changed."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / SNAPSHOT
        self.snap: Snapshot | None = None
        self._sig = None
        self.note = ""  # what happened at the last change (restart, unreadable file, ...)

    def poll(self) -> Snapshot | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None  # none yet, or the run directory was removed: keep the last one
        sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        if sig == self._sig:
            return None
        try:
            snap = read_snapshot(self.path)
        except SnapshotError as e:
            self._sig = sig  # do not retry a bad file until it changes
            self.note = str(e)
            return None
        if snap is None:
            return None
        self._sig = sig
        old = self.snap
        self.note = ""
        if old is not None:
            if snap.step < old.step:
                self.note = f"run restarted: step {old.step:,} -> {snap.step:,}"
            elif snap.meta.get("writer_started") != old.meta.get("writer_started"):
                self.note = f"run resumed at step {snap.step:,}"
        self.snap = snap
        return snap

    def wait(self, timeout_s: float, interval_s: float = 0.2) -> Snapshot | None:
        """Block until a snapshot exists (or `timeout_s` passes)."""
        end = time.monotonic() + timeout_s
        while True:
            snap = self.poll()
            if snap is not None:
                return snap
            if time.monotonic() >= end:
                return None
            time.sleep(interval_s)


def load_checkpoint(run_dir, which: str, max_slots: int) -> Snapshot:
    """A Snapshot of checkpoint `which` ("latest" or a step number) of the run in `run_dir`."""
    import json

    import numpy as np

    from evodevo.metrics import RecentLives
    from evodevo.world.checkpoint import CheckpointError, Checkpoints
    from evodevo.world.runner import CHECKPOINTS, LIFETIMES, LifetimeLog
    from evodevo.world.sim import Simulation

    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    ckpt_dir = run_dir / CHECKPOINTS
    if not ckpt_dir.is_dir():
        raise ViewError(f"'{run_dir}' has no checkpoints yet")
    ckpt = Checkpoints(ckpt_dir, cfg.run.keep_checkpoints)
    try:
        steps = sorted(ckpt.manager.all_steps())
        if not steps:
            raise ViewError(f"'{run_dir}' has no checkpoints yet")
        if which == "latest":
            step = steps[-1]
        else:
            try:
                step = int(which)
            except ValueError:
                raise ViewError(f"--checkpoint must be 'latest' or a step number, not '{which}'") from None
            if step not in steps:
                raise ViewError(
                    f"no checkpoint at step {step} in {ckpt_dir}; available: {', '.join(map(str, steps))}"
                )
        sim = Simulation(cfg)
        try:
            state, _meta, step = ckpt.restore(sim.template(), step)
        except CheckpointError as e:
            raise ViewError(str(e)) from None
    finally:
        ckpt.close()
    arrays, meta = collect(sim, state, min(max_slots, sim.n))
    recent = RecentLives(cfg.run.recent_lives, sim.world.achievement_names)
    for life in [x for x in LifetimeLog(run_dir / LIFETIMES).read() if x["death_step"] <= step][-cfg.run.recent_lives:]:
        recent.add(life["lifespan"], life["achievements"])
    path = ckpt_dir / str(step)
    meta.update(time=path.stat().st_mtime if path.exists() else time.time(), hist_len=0, rates={},
                recent=recent.summary(), checkpoint=step)
    arrays["meta"] = np.array(json.dumps(meta))
    from evodevo.viewer.snapshot import from_arrays

    return from_arrays(arrays)
