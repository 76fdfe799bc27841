"""The files of a run directory and how they are written (host side, between chunks).

    config.yaml       the resolved config
    lifetimes.jsonl   one JSON object per finished life (schema in README.md)
    checkpoints/      orbax checkpoints of the whole SimState (keep last k)
    tb/               TensorBoard event files (tensorboardX)
    lineage.png       the gene pool's lineage tree at the latest checkpoint (learning agents)
    report.png        the picture `evodevo report` draws of the run (only when asked for)

Every write goes through `writing(path)`, which turns an OSError (a full disk) into a
`WriteError` naming the file. Of a run over several hosts only process 0 writes these files
(hosts.py); the checkpoints are written by all.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

import jax
import numpy as np

from evodevo.metrics import unpack_bits
from evodevo.world.craftax_world import Cause


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
REPORT = "report.png"
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
            "asleep": bool(rec["asleep"][t, s]),
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

    def kept(self, step: int) -> list[dict]:
        """The lives that ended at or before `step` (what `truncate_to` keeps), without writing."""
        return [life for life in self.read() if life["death_step"] <= step]

    def truncate_to(self, step: int) -> list[dict]:
        """Keep the lives that ended at or before `step` (atomic rewrite); return them."""
        kept = self.kept(step)
        tmp = self.path.with_suffix(".jsonl.tmp")
        try:
            self._write(tmp, "w", kept)
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)  # the old file stands; a partial copy would only hold space
            raise
        return kept


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


class NullWriter:
    """The TensorBoard writer of a process that writes no files (not process 0 of a multi-host run):
    every call does nothing, so the code that computes the scalars runs the same on every process."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


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
