"""The host loop: jitted chunks of steps, with all I/O between chunks.

The files of a run directory and how they are written: runfiles.py; the memory check
before a run starts: memory.py.

Exactly-once lifetimes: a chunk's lives are appended and fsynced *before* any
checkpoint at the chunk's end is written, and a resume drops lines whose
death_step is past the checkpoint it restores (those lives are simulated again).

A write that fails (a full disk) ends the run with a `WriteError` that names the file
and the checkpoint the run can be resumed from; nothing is written after it.

Over several hosts (hosts.py) every process runs this loop alike: each fetches the chunk's
outputs whole, only process 0 writes the files, all write the checkpoints, and a stop signal
to any process stops all after the same chunk.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import time
from pathlib import Path

import numpy as np

from evodevo import config as config_mod
from evodevo.config import Config
from evodevo.metrics import RecentLives
from evodevo.world import hosts
from evodevo.world.checkpoint import Checkpoints
from evodevo.world.craftax_world import Cause
from evodevo.world.memory import check_memory
from evodevo.world.runfiles import (  # noqa: F401 - the run's file names and errors, used through this module too
    CHECKPOINTS, COMPILING, CONFIG, LIFETIMES, LINEAGE, TB, LifetimeLog, NullWriter, RunDirError, WriteError,
    lives_from_chunk, summary_writer, write_png, writing)
from evodevo.world.sim import SimState, Simulation


@contextlib.contextmanager
def stop_signals():
    """SIGINT/SIGTERM set a flag checked between chunks; a second SIGINT interrupts at once."""
    flag = {"stop": None}

    def handler(signum, frame):
        if flag["stop"] is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag["stop"] = signal.Signals(signum).name

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def finite_mean(x) -> float:
    """Mean over the slots that learned (a slot without a transition, or broken, reports NaN)."""
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    return float(x[ok].mean()) if ok.any() else float("nan")


# --------------------------------------------------------------------------- the runner


class Runner:
    """Owns a run directory and a live SimState; `advance(steps)` runs and writes outputs."""

    def __init__(self, run_dir: Path, cfg: Config, sim: Simulation, state: SimState, recent: RecentLives,
                 purge_step: int | None):
        self.run_dir = Path(run_dir)
        self.cfg = cfg
        self.sim = sim
        self.state = state
        self.recent = recent
        self.log = LifetimeLog(self.run_dir / LIFETIMES)
        self.writes = hosts.primary()  # this process writes the run's files (all write checkpoints)
        with writing(self.run_dir / CHECKPOINTS):
            self.ckpt = Checkpoints(self.run_dir / CHECKPOINTS, cfg.run.keep_checkpoints)
        self.hp = config_mod.hyperparams(cfg)  # traced: a shared Simulation may have other floats
        self._purge_step = purge_step
        self._tb = None
        self._pool_counts = None  # cumulative splits/discards at the last TensorBoard write
        self._logged_step = int(state.step)  # lives of all steps up to here are in lifetimes.jsonl
        self._saved_step = purge_step  # the latest checkpoint on disk (None: none yet)
        self._failed = False  # a write failed: write nothing more
        self._compiled = False  # the first chunk (the jit compile) has returned
        self._target = None  # the step the last advance() aims at
        self.stopped_by = None  # name of the signal that stopped the last advance(), if any
        self.snapshots = None
        if cfg.run.snapshot:
            from evodevo.viewer.snapshot import SnapshotWriter

            self.snapshots = SnapshotWriter(self.run_dir, cfg.run.snapshot_every_s)

    # ------------------------------------------------------------------ construction

    @classmethod
    def create(cls, run_dir, cfg: Config, sim: Simulation | None = None) -> "Runner":
        run_dir = Path(run_dir)
        has_checkpoint = (run_dir / CHECKPOINTS).is_dir() and any(
            p.name.isdigit() for p in (run_dir / CHECKPOINTS).iterdir())
        has_lives = (run_dir / LIFETIMES).is_file() and (run_dir / LIFETIMES).stat().st_size > 0
        if has_checkpoint or has_lives:
            raise RunDirError(
                f"run directory '{run_dir}' already holds a run; continue it with `evodevo resume {run_dir}` "
                f"or choose a new --run-dir"
            )
        # Everything that can refuse the run comes before the directory is made.
        sim = Simulation(cfg) if sim is None else sim  # tests share one compiled Simulation
        check_memory(sim)
        state = sim.init(config_mod.hyperparams(cfg))
        recent = RecentLives(cfg.run.recent_lives, sim.world.achievement_names)
        with writing(run_dir):
            run_dir.mkdir(parents=True, exist_ok=True)
        if hosts.primary():
            with writing(run_dir / CONFIG):
                (run_dir / CONFIG).write_text(config_mod.dump_yaml(cfg))
        runner = cls(run_dir, cfg, sim, state, recent, purge_step=None)
        try:
            if runner.writes:
                with writing(runner.log.path):
                    runner.log.path.touch()
            runner.checkpoint()  # step 0: a run killed before its first interval can still resume
        except WriteError as e:
            runner.close_quietly()
            raise runner._annotated(e) from e.__cause__
        return runner

    @classmethod
    def load(cls, run_dir, overrides=()) -> "Runner":
        run_dir = Path(run_dir)
        if not (run_dir / CONFIG).is_file():
            raise RunDirError(f"'{run_dir}' is not a run directory (no {CONFIG}); start one with `evodevo run`")
        if not (run_dir / CHECKPOINTS).is_dir():  # stopped before its first checkpoint: leave the dir as it is
            raise RunDirError(f"'{run_dir}' has no checkpoint to resume from; start it again with `evodevo run`")
        data = config_mod.read_yaml(run_dir / CONFIG)
        bad = [o for o in overrides if not o.strip().startswith("run.")]
        if bad:
            raise RunDirError(f"resume can only change run.* keys, not '{bad[0]}'; start a new run to change the rest")
        cfg = config_mod.from_dict(config_mod.apply_overrides(data, list(overrides)))
        sim = Simulation(cfg)
        check_memory(sim)  # e.g. a GPU-sized run resumed on a laptop
        ckpt = Checkpoints(run_dir / CHECKPOINTS, cfg.run.keep_checkpoints)
        template = sim.template()
        # Restored onto the devices of this resume, which may differ from the run's start.
        state, meta, step = ckpt.restore(template, shardings=sim.shardings(template))
        ckpt.close()
        recent = RecentLives(cfg.run.recent_lives, sim.world.achievement_names)
        log = LifetimeLog(run_dir / LIFETIMES)
        try:
            with writing(log.path):
                kept = log.truncate_to(step) if hosts.primary() else log.kept(step)
        except WriteError as e:
            e.intact_step = step
            raise
        for life in kept[-cfg.run.recent_lives:]:
            recent.add(life["lifespan"], life["achievements"])
        runner = cls(run_dir, cfg, sim, state, recent, purge_step=step)
        view = runner._pool_view()
        if view is not None:  # per-interval split/discard counts continue from the checkpoint
            runner._pool_counts = {k: view["pool"][k] for k in ("splits", "discards")}
        return runner

    # ------------------------------------------------------------------ outputs

    @property
    def step(self) -> int:
        return int(self.state.step)

    @property
    def tb(self):
        if self._tb is None:
            with writing(self.run_dir / TB):
                self._tb = summary_writer(self.run_dir / TB, self._purge_step) if self.writes else NullWriter()
        return self._tb

    def checkpoint(self) -> None:
        step = self.step
        with writing(self.run_dir / CHECKPOINTS / str(step)):
            self.ckpt.save(step, self.state, {"step": step, "config": config_mod.to_dict(self.cfg)})
        self._saved_step = step
        self._write_pool_pictures()

    def _pool_view(self) -> dict | None:
        return self.sim.pool_report(self.state)

    def _write_pool_pictures(self) -> None:
        """At checkpoints: the top-genes table and the lineage tree (TensorBoard and lineage.png).
        A picture that cannot be drawn is reported, never allowed to stop the run; a failed write
        stops it like any other."""
        view = self._pool_view()  # on every process: it gathers from all
        if view is None or not self.writes:
            return
        from evodevo.genepool import report

        try:
            table = report.top_genes_markdown(view, self.step)
            image = report.lineage_image(view["history"], self.step)
        except Exception as e:  # noqa: BLE001 - a picture must never stop a run
            print(f"evodevo: warning: could not draw the lineage tree at step {self.step}: {e}")
            return
        with writing(self.run_dir / TB):
            self.tb.add_text("pool/top_genes", table, self.step)
            self.tb.add_image("pool/lineage", image, self.step, dataformats="HWC")
        with writing(self.run_dir / LINEAGE):
            write_png(self.run_dir / LINEAGE, image)

    def _write_scalars(self, rate: float, metrics: dict, births: int, deaths: np.ndarray) -> dict:
        step = self.step
        tb = self.tb
        tb.add_scalar("perf/agent_steps_per_s", rate, step)
        tb.add_scalar("perf/steps_per_s", rate / self.sim.n, step)
        tb.add_scalar("lives/births", int(births), step)
        for c in Cause:
            if c != Cause.alive:
                tb.add_scalar(f"deaths/{c.name}", int(deaths[c]), step)
        summary = self.recent.summary()
        if summary:
            tb.add_scalar("lives/lifespan_mean", summary["lifespan_mean"], step)
            tb.add_scalar("lives/lifespan_median", summary["lifespan_median"], step)
            tb.add_scalar("lives/crafter_score", summary["crafter_score"], step)
            for name, r in summary["achievement_rates"].items():
                tb.add_scalar(f"achievements/{name}", r, step)
        for name, v in metrics.items():
            tb.add_scalar(f"agents/{name}", v, step)
        for name, (mean, spread) in self.sim.world_history(self.state).items():  # niche construction
            tb.add_scalar(f"world/{name}", mean, step)
            tb.add_scalar(f"world/{name}_spread", spread, step)
        if self.sim.strategy is not None:  # what the living population wants
            for name, w in self.sim.drive_weights(self.state, self.hp).items():
                tb.add_scalar(f"drives/{name}", float(np.mean(w)), step)
                tb.add_scalar(f"drives/{name}_spread", float(np.std(w)), step)
            for name, b in self.sim.instincts(self.state).items():  # and how it leans (agents.instinct)
                tb.add_scalar(f"instinct/{name}", float(np.mean(b)), step)
            for name, b in self.sim.reflexes(self.state).items():  # and what it does beside things (agents.reflex)
                tb.add_scalar(f"reflex/{name}", float(np.mean(b)), step)
        view = self._pool_view()
        if view is not None:
            from evodevo.genepool import report

            self._pool_counts = report.write_tensorboard(tb, view, step, self._pool_counts)
        return summary

    # ------------------------------------------------------------------ the loop

    def advance(self, steps: int) -> bool:
        """Run `steps` more steps. Returns False if stopped early by a signal (after checkpointing).
        A failed write raises WriteError with the checkpoint to resume from and the steps left."""
        self._target = self.step + steps
        try:
            return self._advance(self._target)
        except WriteError as e:
            # Nothing more is written (the disk is likely full): the latest checkpoint stands, and
            # the lives logged past it are dropped by the resume.
            self._failed = True
            raise self._annotated(e) from e.__cause__

    def _annotated(self, e: WriteError) -> WriteError:
        e.intact_step = self._saved_step
        if self._target is not None and self._saved_step is not None:
            e.remaining = self._target - self._saved_step
        return e

    def _advance(self, target: int) -> bool:
        from tqdm import tqdm

        chunk = self.cfg.run.chunk_steps
        every = self.cfg.run.checkpoint_every
        names = self.sim.world.achievement_names
        # The first chunk compiles for a minute or two while the bar sits at 0%: say so.
        bar = tqdm(total=target - self.step, unit="step", disable=not (self.cfg.run.progress and self.writes),
                   dynamic_ncols=True, desc=None if self._compiled else COMPILING)
        stopped = None
        failed = False
        try:
            with stop_signals() as flag:
                while self.step < target and not hosts.anywhere(flag["stop"] is not None):
                    step0 = self.step
                    n = min(chunk, target - step0)
                    t0 = time.perf_counter()
                    self.state, out = self.sim.run_chunk(self.state, n, hp=self.hp)
                    out = hosts.fetch(out)
                    rate = n * self.sim.n / (time.perf_counter() - t0)
                    if not self._compiled:
                        self._compiled = True
                        bar.set_description_str("", refresh=False)
                    lives = lives_from_chunk(out, step0, names, self.sim.describe_life)
                    if self.writes:
                        with writing(self.log.path):
                            self.log.append(lives)
                    self._logged_step = self.step
                    for life in lives:
                        self.recent.add(life["lifespan"], life["achievements"])
                    metrics = {k: finite_mean(v[:n]) for k, v in out["metrics"].items()}
                    if self.snapshots is not None:
                        self.snapshots.maybe_write(self, out, n, final=self.step >= target)
                    births, deaths = hosts.fetch((self.state.births, self.state.deaths))  # once a chunk: a gather
                    with writing(self.run_dir / TB):
                        summary = self._write_scalars(rate, metrics, births, deaths)
                    if self.step // every > step0 // every:
                        self.checkpoint()
                    bar.update(n)
                    bar.set_postfix(
                        agent_steps_s=f"{rate:,.0f}", births=int(births), deaths=int(deaths.sum()),
                        lifespan=f"{summary.get('lifespan_mean', float('nan')):.0f}", refresh=False,
                    )
                # A process that got no signal itself stops for the one that did.
                stopped = flag["stop"] or (None if self.step >= target else "SIGTERM")
                self.stopped_by = stopped
        except WriteError:
            failed = True
            raise
        finally:
            bar.close()
            if not failed:
                # A state whose lives are not all logged (interrupted mid-chunk) must not be saved.
                try:
                    complete = self._logged_step == self.step
                except RuntimeError:  # the state was donated to a chunk that never returned
                    complete = False
                if complete:
                    self.checkpoint()
                with writing(self.run_dir / TB):
                    self.tb.flush()
        if stopped:
            print(
                f"Stopped by {stopped} at step {self.step}; checkpoint saved. "
                f"Continue with: evodevo resume {shlex.quote(str(self.run_dir))} --steps {target - self.step}"
            )
            return False
        return True

    def close_quietly(self) -> None:
        """Close after a failed write (the files' state is what the error says)."""
        self._failed = True
        self.close()

    def close(self) -> None:
        try:
            if self._tb is not None:
                with writing(self.run_dir / TB):
                    self._tb.close()
        except WriteError as e:
            if not self._failed:  # after a failed write, this one is only its echo
                raise self._annotated(e) from e.__cause__
        finally:
            self.ckpt.close()
