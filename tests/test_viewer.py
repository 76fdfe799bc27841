"""The live viewer: snapshot writer/reader, frame rendering, CLI paths, the pygame loop (headless)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import threading
import time
import types
from pathlib import Path

os.environ["SDL_VIDEODRIVER"] = "dummy"  # headless: no window is ever shown
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np  # noqa: E402
import pygame  # noqa: E402
import pytest  # noqa: E402

from evodevo import cli  # noqa: E402
from evodevo.viewer import app, draw, panels, render, snapshot  # noqa: E402
from evodevo.viewer.snapshot import Snapshot, SnapshotWriter, read_snapshot, save_npz_atomic  # noqa: E402
from evodevo.viewer.source import LiveSource  # noqa: E402
from evodevo.viewer.ui import UI, on_key, on_snapshot  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny.yaml")
STEPS = 100
# Craftax processes its textures once per install (~30 s) and caches them: a background job does it beside
# the rest of the suite (conftest.py), and these tests run after it, reading the cache.
pytestmark = pytest.mark.background("textures")


@pytest.fixture(scope="module", autouse=True)
def textures_cached(background):
    from conftest import job_report

    assert job_report(background("textures")[0])["sizes"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished tiny run (4 slots, 100 steps) that wrote a snapshot after every chunk.

    Random agents (fast to compile); the panels of a learning kind are tested on the snapshots
    of a tiny transformer run (`learning_snaps`)."""
    d = tmp_path_factory.mktemp("viewer") / "run"
    rc = cli.main(["run", "--config", TINY, "--run-dir", str(d), "--steps", str(STEPS),
                   "--set", "agents.kind=random", "--set", "world.n_slots=4", "--set", "run.snapshot_every_s=0.01"])
    assert rc == 0
    return d


LEARNING_CHUNKS = 6


@pytest.fixture(scope="module")
def learning_snaps(tmp_path_factory) -> list[Snapshot]:
    """The live snapshot of a tiny transformer run (4 slots) after each of its first 6 chunks, as
    the viewer reads it from the file (the session's shared tiny Simulation: no compile of its own)."""
    from conftest import shared_simulation

    from evodevo import config
    from evodevo.world.runner import Runner

    cfg = config.load(TINY, ["run.snapshot=true", "run.snapshot_every_s=0.01"])
    runner = Runner.create(tmp_path_factory.mktemp("viewer") / "learning", cfg, sim=shared_simulation(cfg))
    runner.checkpoint = lambda: None  # not what is tested here; saves time
    snaps = []
    try:
        for _ in range(LEARNING_CHUNKS):
            assert runner.advance(cfg.run.chunk_steps)
            snaps.append(read_snapshot(runner.run_dir / snapshot.SNAPSHOT))
    finally:
        runner.close()
    assert [x.step for x in snaps] == [cfg.run.chunk_steps * (i + 1) for i in range(LEARNING_CHUNKS)]
    return snaps


@pytest.fixture(scope="module")
def snap(run_dir) -> Snapshot:
    s = read_snapshot(run_dir / snapshot.SNAPSHOT)
    assert s is not None
    return s


@pytest.fixture(scope="module")
def assets(snap):
    return render.Assets(snap.meta["env_name"])


def _png(path) -> np.ndarray:
    return pygame.surfarray.array3d(pygame.image.load(str(path))).transpose(1, 0, 2)


def _colours(a: np.ndarray) -> int:
    return len(np.unique(a.reshape(-1, 3), axis=0))


# --------------------------------------------------------------------------- the snapshot


def test_snapshot_contents(snap):
    assert snap.step == STEPS
    assert snap.n_shown == 4 and snap.meta["n_slots"] == 4
    assert snap.meta["env_name"] == "Craftax-Classic-Symbolic-v1"
    assert snap.env[".map"].shape == (4, 64, 64)
    assert snap.hist["action"].shape == (snapshot.HISTORY, 4)
    assert snap.meta["hist_len"] == min(STEPS, snapshot.HISTORY)
    assert snap.genome == {} and snap.meta["pool"] == {}  # random agents
    assert (snap.slots["birth_step"] <= snap.step).all()
    assert snap.meta["births"] == sum(snap.meta["deaths"].values())


def test_snapshot_is_small(run_dir):
    # 4 Classic worlds: the 64x64 map (stored as uint8) dominates; well under 100 kB
    assert (run_dir / snapshot.SNAPSHOT).stat().st_size < 100_000


def test_env_state_roundtrip(snap, assets):
    env = assets.env_state(snap)
    assert env.map.dtype == np.int32 and env.map.shape == (4, 64, 64)
    np.testing.assert_array_equal(env.player_position, snap.env[".player_position"])


class _FakeRunner:
    def __init__(self, chunk):
        self.cfg = types.SimpleNamespace(run=types.SimpleNamespace(chunk_steps=chunk))


def _out(actions, metric=None):
    out = {"action": np.asarray(actions, np.int8), "cause": np.zeros_like(actions, np.int8), "metrics": {}}
    if metric is not None:
        out["metrics"]["intrinsic_reward"] = np.asarray(metric, np.float32)
    return out


def test_writer_history_ignores_padding(tmp_path, monkeypatch):
    w = SnapshotWriter(tmp_path, every_s=1000.0, max_slots=2, history=5)
    writes = []
    monkeypatch.setattr(w, "write", lambda runner: writes.append(runner))
    r = _FakeRunner(chunk=4)
    a1 = np.arange(12).reshape(4, 3)  # 3 slots, only 2 shown
    assert w.maybe_write(r, _out(a1, a1 * 0.5), 4) is True  # the first chunk writes at once
    a2 = 20 + np.arange(12).reshape(4, 3)
    assert w.maybe_write(r, _out(a2, a2 * 0.5), 4) is False  # not yet time
    assert w.maybe_write(r, _out(a2 + 50, a2), 2, final=True) is True  # the run's end state: write now
    assert len(writes) == 2
    # last 5 valid steps of slots 0,1: a2 rows 1..3, then (a2+50) rows 0..1 (rows 2..3 were padding)
    want = np.concatenate([a2[1:4, :2], (a2 + 50)[:2, :2]])
    np.testing.assert_array_equal(w._hist["action"], want)
    np.testing.assert_allclose(w._hist["intrinsic_reward"], np.concatenate([a2[1:4, :2] * 0.5, a2[:2, :2]]))
    assert w._filled == 5


def test_writer_never_raises_into_the_run(tmp_path, caplog):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the run directory should be")
    w = SnapshotWriter(blocker, every_s=0.0)
    runner = types.SimpleNamespace(cfg=types.SimpleNamespace(run=types.SimpleNamespace(chunk_steps=4)),
                                   state=None, sim=types.SimpleNamespace(n=1))
    with caplog.at_level(logging.WARNING, logger="evodevo.viewer.snapshot"):
        for _ in range(3):
            assert w.maybe_write(runner, _out(np.zeros((4, 1))), 4) is False
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1  # warned once


def _blob_snapshot(step: int, n: int) -> dict:
    data = np.random.default_rng(step).integers(0, 255, n, dtype=np.uint8)
    meta = {"format": snapshot.FORMAT, "step": step, "sum": int(data.sum(dtype=np.int64)), "n": n}
    return {"meta": np.array(json.dumps(meta)), "env/.blob": data}


def _read_whole(path) -> Snapshot:
    """Read a snapshot and check it is complete (its blob matches the size and sum in its meta)."""
    s = read_snapshot(path)  # raises SnapshotError on a partial file
    blob = s.env[".blob"]
    assert len(blob) == s.meta["n"] and int(blob.sum(dtype=np.int64)) == s.meta["sum"]
    return s


def test_snapshot_writes_are_atomic(tmp_path, monkeypatch):
    """A reader never sees a partial file: it reads the complete previous snapshot right after the
    new one's data was written (file still open) and right before the replace, and the complete
    new one right after; a write that fails half-way leaves the previous snapshot and no temp file."""
    path = tmp_path / snapshot.SNAPSHOT
    save_npz_atomic(path, _blob_snapshot(1, 1000))
    seen = []
    real_savez, real_replace = np.savez, os.replace

    def savez(f, **arrays):  # the reader comes in while the new data sits in the open temp file
        real_savez(f, **arrays)
        seen.append(("written", _read_whole(path).step))

    def replace(src, dst):
        seen.append(("before replace", _read_whole(path).step))
        real_replace(src, dst)
        seen.append(("after replace", _read_whole(path).step))

    monkeypatch.setattr(np, "savez", savez)
    monkeypatch.setattr(os, "replace", replace)
    save_npz_atomic(path, _blob_snapshot(2, 300_000))  # larger: a torn read would show
    assert seen == [("written", 1), ("before replace", 1), ("after replace", 2)]

    def savez_dies(f, **arrays):  # e.g. the disk fills up half-way through the data
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", savez_dies)
    with pytest.raises(OSError, match="No space"):
        save_npz_atomic(path, _blob_snapshot(3, 1000))
    assert _read_whole(path).step == 2
    assert [p.name for p in tmp_path.iterdir()] == [snapshot.SNAPSHOT]  # no temporary file left


def test_live_source_survives_restart(tmp_path, snap):
    src = LiveSource(tmp_path)
    assert src.poll() is None  # no snapshot yet
    arrays = {f"env/{k}": v for k, v in snap.env.items()}
    arrays.update({f"slots/{k}": v for k, v in snap.slots.items()})

    def put(step, started):
        meta = dict(snap.meta, step=step, writer_started=started)
        save_npz_atomic(tmp_path / snapshot.SNAPSHOT, dict(arrays, meta=np.array(json.dumps(meta))))
        os.utime(tmp_path / snapshot.SNAPSHOT, ns=(step * 10**9, step * 10**9))  # a visible change

    put(500, 1.0)
    assert src.poll().step == 500 and src.note == ""
    assert src.poll() is None  # unchanged file: nothing new
    put(200, 2.0)  # the run was restarted from an older checkpoint
    assert src.poll().step == 200 and "restarted" in src.note
    put(300, 2.0)
    assert src.poll().step == 300 and src.note == ""
    put(400, 3.0)
    assert src.poll().step == 400 and "resumed" in src.note
    (tmp_path / snapshot.SNAPSHOT).unlink()  # the run directory was cleaned: keep the last one
    assert src.poll() is None and src.snap.step == 400


# --------------------------------------------------------------------------- UI state


def test_keys():
    ui = UI()
    ui, cmd = on_key(ui, "right", 4)
    assert ui.selected == 1 and cmd is None
    ui, _ = on_key(ui, "down", 4)  # 2x2 grid
    assert ui.selected == 3
    ui, _ = on_key(ui, "tab", 4)
    assert ui.selected == 0
    ui, _ = on_key(ui, "tab", 4, shift=True)
    assert ui.selected == 3
    ui, _ = on_key(ui, "f", 4)
    assert ui.follow
    ui, _ = on_key(ui, "left", 4)
    assert ui.selected == 2 and not ui.follow  # choosing an agent stops following
    for key, field in (("p", "paused"), ("h", "help"), ("m", "show_map")):
        ui, _ = on_key(ui, key, 4)
        assert getattr(ui, field)
    assert on_key(ui, "q", 4)[1] == "quit" and on_key(ui, "escape", 4)[1] == "quit"
    assert on_key(ui, "s", 4)[1] == "screenshot"


def test_follow_selects_the_oldest_random_agent(snap):
    ui = on_snapshot(UI(follow=True), snap)
    ages = snap.step - snap.slots["birth_step"]
    assert ages[ui.selected] == ages.max()


def test_follow_selects_the_fittest_learning_agent(learning_snaps):
    """Follow picks the highest fitness so far. Under `survival` fitness (the tiny preset's) the
    fittest living agent is the oldest, so each snapshot is also shown with a fitness that favours
    the youngest: the fitness, not the age, decides."""
    for s in learning_snaps:
        fit = s.genome["fitness"]
        assert fit.shape == (s.n_shown,) and np.isfinite(fit).all()
        ui = on_snapshot(UI(follow=True, selected=3), s)
        assert ui.selected == int(np.argmax(fit)) and ui.follow
        ages = s.step - s.slots["birth_step"]
        youngest_fittest = dataclasses.replace(s, genome={**s.genome, "fitness": -ages.astype(np.float32)})
        assert on_snapshot(UI(follow=True, selected=int(np.argmax(ages))), youngest_fittest).selected == \
            int(np.argmin(ages))


# --------------------------------------------------------------------------- frames


def test_frame_shows_grid_and_panels(assets, snap):
    surf = render.draw_frame(assets, snap, UI(selected=1), render.Status("run", time.time()))
    a = render.frame_array(surf)
    assert a.shape == (render.SIZE[1], render.SIZE[0], 3)
    grid = a[render.HEADER_H:, : render.SIZE[0] - render.PANEL_W]
    panel = a[render.HEADER_H:, render.SIZE[0] - render.PANEL_W:]
    assert _colours(grid) > 200  # Craftax textures
    assert _colours(panel) > 20  # text and bars
    assert (panel == render.ACCENT).all(axis=-1).any()  # the panel titles


def test_whole_map(assets, snap):
    img = render.world_map(assets, snap, 0, cell=8)
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    r, c = snap.env[".player_position"][0].astype(int)
    assert tuple(img[r * 8 + 4, c * 8 + 4]) == (255, 0, 255)  # the player
    assert _colours(img) >= 5
    surf = render.draw_frame(assets, snap, UI(show_map=True, help=True), render.Status("run", time.time()))
    assert _colours(render.frame_array(surf)) > 20


def test_frame_with_genome_and_pool(assets, learning_snaps):
    """The panels a learning agent kind fills, from a real transformer run's snapshot: its genome
    arrays, learning metrics and pool summary (genepool.report.summary: top genes, recent splits,
    lineage)."""
    snap = next(x for x in learning_snaps if x.meta["pool"]["recent_splits"])  # splits start at step 125
    pool = snap.meta["pool"]
    parents = draw.gene_parents(pool)
    for sp in pool["recent_splits"]:  # the pool's own format: {id, parent, kind, step}
        assert parents[sp["id"]] == sp["parent"] >= 0
    assert {int(k) for k in pool["lineage"]} <= set(parents) and len(pool["lineage"]) == pool["living_genes"]
    assert {"intrinsic_reward", "loss_forward"} <= set(snap.hist)
    sel = 1
    a = render.frame_array(render.draw_frame(assets, snap, UI(selected=sel), render.Status("run", time.time())))
    panel = a[render.HEADER_H:, render.SIZE[0] - render.PANEL_W:]
    # the genome strip: the lineage colour of the selected agent's encoder gene (drawn fully) is in the panel
    colour = draw.lineage_colour(int(snap.genome["encoder_id"][sel]), parents)
    assert (panel == colour).all(axis=-1).sum() > 200
    assert draw.lineage_colour(7, {7: 3})[0:3] != draw.lineage_colour(5, {})  # other lineage, other colour
    np.testing.assert_allclose(panels.gate_openness([[0.0, 100.0], [-100.0, 0.5]]), [[0, 1], [1, np.tanh(0.5)]])


# --------------------------------------------------------------------------- the command line


def test_screenshot_cli(run_dir, tmp_path, capsys):
    out = tmp_path / "shot.png"
    assert cli.main(["view", str(run_dir), "--screenshot", str(out)]) == 0
    a = _png(out)
    assert a.shape == (render.SIZE[1], render.SIZE[0], 3)
    assert _colours(a[render.HEADER_H:, :700]) > 200
    assert _colours(a[render.HEADER_H:, -render.PANEL_W:]) > 20
    assert "Saved" in capsys.readouterr().out


def test_screenshot_of_checkpoint(run_dir, tmp_path, capsys):
    out = tmp_path / "ckpt.png"
    assert cli.main(["view", str(run_dir), "--checkpoint", "latest", "--screenshot", str(out)]) == 0
    assert f"step {STEPS}" in capsys.readouterr().out
    assert _colours(_png(out)) > 200
    assert cli.main(["view", str(run_dir), "--checkpoint", "7", "--screenshot", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("evodevo: error: no checkpoint at step 7") and f"{STEPS}" in err
    assert len(err.splitlines()) == 1


def test_missing_run_dir(tmp_path, capsys):
    assert cli.main(["view", str(tmp_path / "nope"), "--screenshot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("evodevo: error:") and "does not exist" in err and len(err.splitlines()) == 1
    assert cli.main(["view", str(tmp_path), "--screenshot", str(tmp_path / "x.png")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_no_snapshot_yet_waits_then_fails(run_dir, tmp_path, capsys, monkeypatch):
    d = tmp_path / "fresh"
    d.mkdir()
    shutil.copy(run_dir / "config.yaml", d / "config.yaml")  # a run that has not finished its first chunk
    monkeypatch.setattr(app, "SCREENSHOT_WAIT_S", 0.5)
    t0 = time.monotonic()
    assert cli.main(["view", str(d), "--screenshot", str(tmp_path / "x.png")]) == 2
    assert 0.4 < time.monotonic() - t0 < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("evodevo: error: no live snapshot") and "--checkpoint latest" in err[-1]
    assert not (tmp_path / "x.png").exists()


def test_screenshot_waits_for_the_first_snapshot(run_dir, tmp_path, monkeypatch):
    d = tmp_path / "late"
    d.mkdir()
    shutil.copy(run_dir / "config.yaml", d / "config.yaml")
    monkeypatch.setattr(app, "SCREENSHOT_WAIT_S", 60.0)
    timer = threading.Timer(0.5, shutil.copy, (run_dir / snapshot.SNAPSHOT, d / snapshot.SNAPSHOT))
    timer.start()
    try:
        assert cli.main(["view", str(d), "--screenshot", str(tmp_path / "late.png")]) == 0
    finally:
        timer.cancel()
    assert (tmp_path / "late.png").exists()


def test_snapshot_disabled_fails_at_once(run_dir, tmp_path, capsys):
    d = tmp_path / "off"
    d.mkdir()
    text = (run_dir / "config.yaml").read_text().replace("snapshot: true", "snapshot: false")
    (d / "config.yaml").write_text(text)
    assert cli.main(["view", str(d), "--screenshot", str(tmp_path / "x.png")]) == 2
    assert "run.snapshot: false" in capsys.readouterr().err


# --------------------------------------------------------------------------- the window (dummy video driver)


def test_window_keys_and_screenshot(run_dir, monkeypatch):
    """The pygame loop: Tab, M, H, P, S (saves a PNG into RUN_DIR/screenshots), then Q."""
    keys = [pygame.K_TAB, pygame.K_m, pygame.K_h, pygame.K_p, pygame.K_s, pygame.K_q]
    script = [[]] + [[pygame.event.Event(pygame.KEYDOWN, key=k, mod=0)] for k in keys]
    seen = []
    viewer = app.Viewer(run_dir, None)

    def fake_get():
        seen.append(viewer.ui)
        return script.pop(0) if script else [pygame.event.Event(pygame.QUIT)]

    monkeypatch.setattr(pygame.event, "get", fake_get)
    for f in (run_dir / "screenshots").glob("*.png") if (run_dir / "screenshots").exists() else []:
        f.unlink()
    assert viewer.run() == 0
    assert seen[2].selected == 1 and seen[3].show_map and seen[4].help and seen[5].paused
    shots = list((run_dir / "screenshots").glob("*.png"))
    assert len(shots) == 1
    assert _colours(_png(shots[0])) > 100


def test_snapshot_pool_summary_and_genome(learning_snaps):
    """A learning run's snapshot carries Simulation.pool_summary and genome_arrays (random agents:
    neither, see test_snapshot_contents)."""
    last = learning_snaps[-1]
    pool = last.meta["pool"]
    assert json.loads(json.dumps(pool)) == pool
    assert pool["living_genes"] > 0 and 0 < pool["entropy"] and pool["top_genes"]
    # the lineage {gene id: parent id} of every living gene: the top genes are living genes
    assert all(pool["lineage"][str(g["id"])] == g["parent"] for g in pool["top_genes"])
    assert {"layer_id", "gates", "encoder_id", "head_id", "fitness"} <= set(last.genome)
    assert last.genome["layer_id"].shape[0] == last.n_shown


def test_collect_leaves_the_state_donatable():
    """Fetching the snapshot must not pin the run's state buffers (the next chunk donates them)."""
    import jax

    from conftest import shared_simulation

    from evodevo import config

    # random agents at the tiny preset's 4 slots: the world's generator ran at these shapes already (op by op)
    sim = shared_simulation(config.load(TINY, ["agents.kind=random"]))
    state = sim.init()
    arrays, meta = snapshot.collect(sim, state, 2)
    assert arrays["env/.map"].shape == (2, 64, 64) and meta["step"] == 0
    leaves = jax.tree.leaves((state.world.env, state.slots))
    jax.block_until_ready(jax.jit(lambda t: jax.tree.map(lambda x: x, t), donate_argnums=0)(leaves))
    assert all(x.is_deleted() for x in leaves)
