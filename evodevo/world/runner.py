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

A write that fails (a full disk) ends the run with a `WriteError` that names the file
and the checkpoint the run can be resumed from; nothing is written after it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import shlex
import signal
import socket
import time
from pathlib import Path

import jax
import numpy as np

from evodevo import config as config_mod
from evodevo.config import Config, ConfigError, RunConfig
from evodevo.metrics import RecentLives, unpack_bits
from evodevo.world.checkpoint import Checkpoints, format_bytes
from evodevo.world.craftax_world import Cause
from evodevo.world.sim import SimState, Simulation


class RunDirError(RuntimeError):
    """A run directory that cannot be used as asked: the message says what to do."""


class WriteError(RuntimeError):
    """A file of the run could not be written (disk full, ...). `intact_step` is the checkpoint
    the run can be resumed from (None: there is none yet), `remaining` the steps still to run."""

    def __init__(self, path, err: OSError):
        self.path, self.err = Path(path), err
        self.cause = err.strerror or str(err) or type(err).__name__
        self.intact_step: int | None = None
        self.remaining: int | None = None
        super().__init__(f"cannot write {path}: {self.cause}")


@contextlib.contextmanager
def writing(path):
    """Turn an OSError raised while writing `path` into a WriteError naming it."""
    try:
        yield
    except OSError as e:
        raise WriteError(path, e) from e


CONFIG = "config.yaml"
LIFETIMES = "lifetimes.jsonl"
CHECKPOINTS = "checkpoints"
TB = "tb"
LINEAGE = "lineage.png"
COMPILING = "compiling the simulation step (about 2 min on a first run)"


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


# --------------------------------------------------------------------------- memory


@functools.lru_cache(maxsize=8)
def _state_bytes(cfg: Config) -> int:
    shapes = jax.eval_shape(Simulation(cfg).init)  # shapes only: nothing is allocated
    return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(shapes))


def state_bytes(cfg: Config) -> tuple[int, int]:
    """(bytes of the SimState of `cfg`, bytes per slot), from the shapes of 1 and 2 slots: the state
    is linear in world.n_slots (the gene pool does not grow with it), and tracing the world
    generation of a huge slot count would itself take long."""
    one, two = (_state_bytes(dataclasses.replace(cfg, world=dataclasses.replace(cfg.world, n_slots=n),
                                                 run=RunConfig()))  # run.* does not shape the state
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


# --------------------------------------------------------------------------- outputs


def write_png(path: Path, image: np.ndarray) -> None:
    """Save an [H, W, 3] uint8 image as PNG atomically (a reader sees the old picture or the new one)."""
    from matplotlib.image import imsave

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            imsave(f, image, format="png")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def summary_writer(logdir: Path, purge_step: int | None):
    """tensorboardX's SummaryWriter with its events written in the caller's thread. Its own writer
    thread dies on a failed write (a full disk) with a traceback, and the run then hangs once the
    thread's queue is full; here the OSError reaches the run loop."""
    from tensorboardX import SummaryWriter
    from tensorboardX import writer as tbx
    from tensorboardX.proto.event_pb2 import Event, SessionLog
    from tensorboardX.record_writer import RecordWriter

    class EventFile:
        """The part of tensorboardX's EventFileWriter that its FileWriter uses, without the thread."""

        def __init__(self, logdir: str):
            self._logdir = logdir
            os.makedirs(logdir, exist_ok=True)
            base = os.path.join(logdir, f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}")
            path, n = base, 0
            while os.path.exists(path):  # a resume within the same second must not truncate the run's file
                n += 1
                path = f"{base}.{n}"
            self._records = RecordWriter(path)
            self.add_event(Event(wall_time=time.time(), file_version="brain.Event:2"))

        def get_logdir(self):
            return self._logdir

        def add_event(self, event):
            self._records.write(event.SerializeToString())

        def flush(self):
            self._records.flush()

        def close(self):
            try:
                self._records.flush()
            finally:
                self._records.close()  # closes the file even if the flush failed (no warning at exit)

        def reopen(self):
            pass

    class FileWriter(tbx.FileWriter):
        def __init__(self, logdir):  # noqa: D107 - no thread, no atexit hook
            self.event_writer = EventFile(str(logdir))
            self._default_metadata = {}

    class Writer(SummaryWriter):
        def _get_file_writer(self):
            if self.file_writer is None:
                self.file_writer = FileWriter(self.logdir)
                if self.purge_step is not None:  # as tensorboardX does: TensorBoard drops later steps
                    self.file_writer.add_event(Event(step=self.purge_step, file_version="brain.Event:2"))
                    self.file_writer.add_event(
                        Event(step=self.purge_step, session_log=SessionLog(status=SessionLog.START)))
                self.all_writers = {self.file_writer.get_logdir(): self.file_writer}
            return self.file_writer

    return Writer(str(logdir), purge_step=purge_step)


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
        check_memory(cfg)
        sim = Simulation(cfg) if sim is None else sim  # tests share one compiled Simulation
        state = sim.init(config_mod.hyperparams(cfg))
        recent = RecentLives(cfg.run.recent_lives, sim.world.achievement_names)
        with writing(run_dir):
            run_dir.mkdir(parents=True, exist_ok=True)
        with writing(run_dir / CONFIG):
            (run_dir / CONFIG).write_text(config_mod.dump_yaml(cfg))
        runner = cls(run_dir, cfg, sim, state, recent, purge_step=None)
        try:
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
        check_memory(cfg)  # e.g. a GPU-sized run resumed on a laptop
        sim = Simulation(cfg)
        ckpt = Checkpoints(run_dir / CHECKPOINTS, cfg.run.keep_checkpoints)
        state, meta, step = ckpt.restore(sim.init(config_mod.hyperparams(cfg)))
        ckpt.close()
        recent = RecentLives(cfg.run.recent_lives, sim.world.achievement_names)
        log = LifetimeLog(run_dir / LIFETIMES)
        try:
            with writing(log.path):
                kept = log.truncate_to(step)
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
                self._tb = summary_writer(self.run_dir / TB, self._purge_step)
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
        view = self._pool_view()
        if view is None:
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
        bar = tqdm(total=target - self.step, unit="step", disable=not self.cfg.run.progress, dynamic_ncols=True,
                   desc=None if self._compiled else COMPILING)
        stopped = None
        failed = False
        try:
            with stop_signals() as flag:
                while self.step < target and flag["stop"] is None:
                    step0 = self.step
                    n = min(chunk, target - step0)
                    t0 = time.perf_counter()
                    self.state, out = self.sim.run_chunk(self.state, n, hp=self.hp)
                    out = jax.device_get(out)
                    rate = n * self.sim.n / (time.perf_counter() - t0)
                    if not self._compiled:
                        self._compiled = True
                        bar.set_description_str("", refresh=False)
                    lives = lives_from_chunk(out, step0, names, self.sim.describe_life)
                    with writing(self.log.path):
                        self.log.append(lives)
                    self._logged_step = self.step
                    for life in lives:
                        self.recent.add(life["lifespan"], life["achievements"])
                    metrics = {k: float(np.mean(v[:n])) for k, v in out["metrics"].items()}
                    if self.snapshots is not None:
                        self.snapshots.maybe_write(self, out, n)
                    with writing(self.run_dir / TB):
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
