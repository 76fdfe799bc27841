"""The host loop: jitted chunks of steps, with all I/O between chunks.

A run directory holds:
    config.yaml       the resolved config
    lifetimes.jsonl   one JSON object per finished life (schema in README.md)
    checkpoints/      orbax checkpoints of the whole SimState (keep last k)
    tb/               TensorBoard event files (tensorboardX)
    lineage.png       the gene pool's lineage tree at the latest checkpoint (learning agents)

Exactly-once lifetimes: a chunk's lives are appended and fsynced *before* any
checkpoint at the chunk's end is written, and a resume drops lines whose
death_step is past the checkpoint it restores (those lives are simulated again).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import jax
import numpy as np

from evodevo import config as config_mod
from evodevo.config import Config
from evodevo.metrics import RecentLives, unpack_bits
from evodevo.world.checkpoint import Checkpoints
from evodevo.world.craftax_world import Cause
from evodevo.world.sim import SimState, Simulation


class RunDirError(RuntimeError):
    """A run directory that cannot be used as asked: the message says what to do."""


CONFIG = "config.yaml"
LIFETIMES = "lifetimes.jsonl"
CHECKPOINTS = "checkpoints"
TB = "tb"


def lives_from_chunk(out: dict, step0: int, names, describe=None) -> list[dict]:
    """Decode the per-step outputs of one chunk into lifetime records, in death order."""
    cause = np.asarray(out["cause"])
    ts, slots = np.nonzero(cause)
    if len(ts) == 0:
        return []
    rec = jax.tree.map(np.asarray, out["record"])
    lives = []
    for t, s in zip(ts.tolist(), slots.tolist()):
        birth = int(rec["birth_step"][t, s])
        death = step0 + t + 1
        life = {
            "agent_id": int(rec["agent_id"][t, s]),
            "slot": s,
            "birth_step": birth,
            "death_step": death,
            "lifespan": death - birth,
            "cause": Cause(int(cause[t, s])).name,
            "parents": [int(p) for p in rec["parents"][t, s] if p >= 0],
            "achievements": [n for n, f in zip(names, unpack_bits(rec["achievements"][t, s], len(names))) if f],
        }
        if describe is not None:
            life.update(describe(jax.tree.map(lambda x: x[t, s], rec)))
        lives.append(life)
    return lives


class LifetimeLog:
    """Append-only lifetimes.jsonl, truncated to a checkpoint on resume."""

    def __init__(self, path: Path):
        self.path = path

    def append(self, lives: list[dict]) -> None:
        if lives:
            self._write(self.path, "a", lives)

    @staticmethod
    def _write(path: Path, mode: str, lives: list[dict]) -> None:
        """Write one JSON line per life and fsync: the lives are on disk before any checkpoint after them."""
        with open(path, mode) as f:
            f.write("".join(json.dumps(life) + "\n" for life in lives))
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        lives = []
        with open(self.path) as f:
            for line in f:
                try:
                    lives.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a line cut by a kill: everything after it is unreliable
        return lives

    def truncate_to(self, step: int) -> list[dict]:
        """Keep the lives that ended at or before `step` (atomic rewrite); return them."""
        kept = [life for life in self.read() if life["death_step"] <= step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        try:
            self._write(tmp, "w", kept)
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)  # the old file stands; a partial copy would only hold space
            raise
        return kept


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
        self.ckpt = Checkpoints(self.run_dir / CHECKPOINTS, cfg.run.keep_checkpoints)
        self._purge_step = purge_step
        self._tb = None
        self._pool_counts = None  # cumulative splits/discards at the last TensorBoard write
        self._logged_step = int(state.step)  # lives of all steps up to here are in lifetimes.jsonl
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
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG).write_text(config_mod.dump_yaml(cfg))
        sim = Simulation(cfg) if sim is None else sim  # tests share one compiled Simulation
        recent = RecentLives(cfg.run.recent_lives, sim.world.achievement_names)
        runner = cls(run_dir, cfg, sim, sim.init(), recent, purge_step=None)
        runner.log.path.touch()
        runner.checkpoint()  # step 0: a run killed before its first interval can still resume
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
        ckpt = Checkpoints(run_dir / CHECKPOINTS, cfg.run.keep_checkpoints)
        state, meta, step = ckpt.restore(sim.init())
        ckpt.close()
        recent = RecentLives(cfg.run.recent_lives, sim.world.achievement_names)
        log = LifetimeLog(run_dir / LIFETIMES)
        for life in log.truncate_to(step)[-cfg.run.recent_lives:]:
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
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / TB), purge_step=self._purge_step)
        return self._tb

    def checkpoint(self) -> None:
        self.ckpt.save(self.step, self.state, {"step": self.step, "config": config_mod.to_dict(self.cfg)})
        self._write_pool_pictures()

    def _pool_view(self) -> dict | None:
        fn = getattr(self.sim.agents, "pool_report", None)
        return None if fn is None else fn(self.state.agents, self.state.pool)

    def _write_pool_pictures(self) -> None:
        """At checkpoints: the top-genes table and the lineage tree (TensorBoard and lineage.png).
        A picture that cannot be made is reported, never allowed to stop the run."""
        view = self._pool_view()
        if view is None:
            return
        from evodevo.genepool import report

        try:
            self.tb.add_text("pool/top_genes", report.top_genes_markdown(view, self.step), self.step)
            image = report.lineage_image(view["history"], self.step)
            self.tb.add_image("pool/lineage", image, self.step, dataformats="HWC")
            import pygame

            tmp = self.run_dir / ".lineage.png.tmp.png"
            pygame.image.save(pygame.surfarray.make_surface(image.transpose(1, 0, 2)), str(tmp))
            os.replace(tmp, self.run_dir / "lineage.png")
        except Exception as e:  # noqa: BLE001 - a picture must never stop a run
            print(f"evodevo: warning: could not draw the lineage tree at step {self.step}: {e}")

    def _write_scalars(self, rate: float, metrics: dict) -> dict:
        step = self.step
        tb = self.tb
        tb.add_scalar("perf/agent_steps_per_s", rate, step)
        tb.add_scalar("perf/steps_per_s", rate / self.sim.n, step)
        births = int(self.state.births)
        deaths = np.asarray(self.state.deaths)
        tb.add_scalar("lives/births", births, step)
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
        view = self._pool_view()
        if view is not None:
            from evodevo.genepool import report

            self._pool_counts = report.write_tensorboard(tb, view, step, self._pool_counts)
        return summary

    # ------------------------------------------------------------------ the loop

    def advance(self, steps: int) -> bool:
        """Run `steps` more steps. Returns False if stopped early by a signal (after checkpointing)."""
        from tqdm import tqdm

        chunk = self.cfg.run.chunk_steps
        every = self.cfg.run.checkpoint_every
        target = self.step + steps
        names = self.sim.world.achievement_names
        bar = tqdm(total=steps, unit="step", disable=not self.cfg.run.progress, dynamic_ncols=True)
        stopped = None
        try:
            with stop_signals() as flag:
                while self.step < target and flag["stop"] is None:
                    step0 = self.step
                    n = min(chunk, target - step0)
                    t0 = time.perf_counter()
                    self.state, out = self.sim.run_chunk(self.state, n)
                    out = jax.device_get(out)
                    rate = n * self.sim.n / (time.perf_counter() - t0)
                    lives = lives_from_chunk(out, step0, names, self.sim.agents.describe_life)
                    self.log.append(lives)
                    self._logged_step = self.step
                    for life in lives:
                        self.recent.add(life["lifespan"], life["achievements"])
                    metrics = {k: float(np.mean(v[:n])) for k, v in out["metrics"].items()}
                    if self.snapshots is not None:
                        self.snapshots.maybe_write(self, out, n)
                    summary = self._write_scalars(rate, metrics)
                    if self.step // every > step0 // every:
                        self.checkpoint()
                    bar.update(n)
                    bar.set_postfix(
                        agent_steps_s=f"{rate:,.0f}", births=int(self.state.births),
                        deaths=int(np.asarray(self.state.deaths).sum()),
                        lifespan=f"{summary.get('lifespan_mean', float('nan')):.0f}", refresh=False,
                    )
                stopped = flag["stop"]
                self.stopped_by = stopped
        finally:
            bar.close()
            # A state whose lives are not all logged (interrupted mid-chunk) must not be saved.
            try:
                complete = self._logged_step == self.step
            except RuntimeError:  # the state was donated to a chunk that never returned
                complete = False
            if complete:
                self.checkpoint()
            self.tb.flush()
        if stopped:
            print(
                f"Stopped by {stopped} at step {self.step}; checkpoint saved. "
                f"Continue with: evodevo resume {self.run_dir} --steps {target - self.step}"
            )
            return False
        return True

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        self.ckpt.close()
