"""Shared test fixtures.

JAX compiles are the cost of this suite (10-40 s each on a 2-core CPU), so:

* XLA's optimisations are off (`jax_disable_most_optimizations`, here and in subprocesses);
* a persistent compilation cache lives for the pytest session (a temporary directory,
  removed at exit): a second `Simulation` of the same config, and the `evodevo` processes
  started by the CLI tests, load compiled code instead of compiling it again;
* `simulation(cfg)` returns one shared `Simulation` per compiled shape, and the
  `shared_simulations` fixture makes `Runner.create/load` use those shared objects;
* checks that are whole programs of their own (2 CPU devices; the GPU preset's model) run as
  background jobs (tests/jobs/), started right after collection (niced): XLA compiles on one
  core, so they compile beside the main process instead of after it. A job may start after
  another one (`BACKGROUND_JOBS`), to find in the cache what the main process compiled meanwhile. A test marked
  `@pytest.mark.background("name")` reads its job's result with the `background` fixture;
  such tests run after all the others.

Tests that use `Simulation.run_chunk` must remember that it donates its input state.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

# ----------------------------------------------------------------- compilation cache

_JAX_CACHE = tempfile.mkdtemp(prefix="evodevo-test-jax-cache-")
atexit.register(shutil.rmtree, _JAX_CACHE, ignore_errors=True)
# XLA's optimisations off (-O0): the suite's programs are tiny and compile far longer than they run
# (the tiny preset's chunk: 24 s to compile instead of 32, its init 11 s instead of 21; 50 steps then
# take 0.2 s instead of 0.05). Semantics are XLA's either way; subprocesses get the same setting.
# XLA's fusion emitters off: the tiny chunk compiles ~20% faster (67-70 s against 84-88 s beside other jobs).
# Vmapped kernels then round differently in the last bits from unbatched ones, so tests that compare a
# batched program with an unbatched one compare floats to within rounding (as two devices against one do).
XLA_FLAGS = " ".join([os.environ.get("XLA_FLAGS", ""), "--xla_cpu_use_fusion_emitters=false"]).strip()
os.environ["XLA_FLAGS"] = XLA_FLAGS  # read when this process's CPU backend starts (at its first computation)
JAX_CACHE_ENV = {
    "JAX_COMPILATION_CACHE_DIR": _JAX_CACHE,
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
    "XLA_FLAGS": XLA_FLAGS,
}
jax.config.update("jax_compilation_cache_dir", _JAX_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
jax.config.update("jax_disable_most_optimizations", True)


# ----------------------------------------------------------------- basics


@pytest.fixture
def key():
    """A fixed PRNG key."""
    return jax.random.PRNGKey(0)


def tiny_config(*overrides):
    """configs/tiny.yaml (4 slots, a d_model-16 transformer, 50-step chunks, max_age 300) without
    the live snapshot, plus `overrides`."""
    from evodevo import config

    return config.load(CONFIGS / "tiny.yaml", ["run.snapshot=false", *overrides])


@pytest.fixture(scope="session")
def tiny_cfg():
    return tiny_config()


def learner_steps(ag, hp, n, obs_dim, body, danger=None):
    """A learner driven alone by synthetic inputs (sparse random observations, `body(t)` [n, 5], `danger(t)` [n]):
    (jitted step(agents, carried, prev, t) -> (agents, carried, action, broken, metrics, pending),
    carried for the first step given the agents). Inputs are typed, not weakly typed: the carry a
    step returns is the one it takes, so the step compiles once."""
    import jax.numpy as jnp

    from evodevo.agents.kind import Senses

    def inputs(prev, t):
        key = jax.random.fold_in(jax.random.PRNGKey(7), t)
        obs = (jax.random.uniform(key, (n, obs_dim)) < 0.05).astype(jnp.float32)
        return obs, Senses(age=jnp.full(n, t, jnp.int32), pos=jnp.full((n, 2), 30 + t, jnp.int32), prev_action=prev,
                           body=body(t), danger=None if danger is None else danger(t), **beside_nothing(n)), key

    @jax.jit
    def step(agents, carried, prev, t):
        obs, senses, key = inputs(prev, t)
        action, agents, pending = ag.act(hp, agents, obs, senses, key)
        agents, broken, metrics = ag.learn(hp, agents, carried, pending, senses, jnp.zeros(n, bool),
                                           jnp.full(n, t > 0))
        return agents, ag.carry(pending), action, broken, metrics, pending

    def first_carried(agents):
        prev = jnp.full(n, -1, jnp.int32)
        return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(
            lambda a: ag.carry(ag.act(hp, a, *inputs(prev, 0))[2]), agents))

    return step, first_carried


@functools.cache
def jitted_forward(ag):
    """`ag.forward` (one agent, one step) compiled once per learner and shared by the tests that step an agent
    by hand: op by op, a forward pass compiles each of its several hundred operations (~5 s here). Give it
    arrays, not Python ints (a weakly typed int is another signature: another compile)."""
    return jax.jit(ag.forward)


def founders(ag, n, key):
    """n newborns of a learner `ag` from fresh random genes, op by op (compiles no program of its own):
    agents of a config whose state differs from the shared tiny state's."""
    import jax.numpy as jnp

    dm = ag.dm

    def genes(k):
        kinds = ag.genes()
        named = {kind: f(jax.random.fold_in(k, i)) for i, (kind, f) in enumerate(kinds.items()) if kind != "layer"}
        layers = [kinds["layer"](jax.random.fold_in(k, 10 + i)) for i in range(dm.l_max)]
        return ag.flatten(dict(named, layer=jax.tree.map(lambda *x: jnp.stack(x), *layers)))

    agents = [ag.newborn(genes(jax.random.fold_in(key, s)), jnp.arange(dm.l_max) < 2, jnp.ones((dm.l_max, 2)),
                         jax.random.fold_in(key, 100 + s)) for s in range(n)]
    return jax.tree.map(lambda *x: jnp.stack(x), *agents)


def beside_nothing(n: int) -> dict:
    """The Senses fields a reflex reads, for n agents with nothing beside them (facing LEFT)."""
    import jax.numpy as jnp

    from evodevo.world.craftax_world import NEIGHBOUR_KINDS

    return {"near": jnp.zeros((n, 4, len(NEIGHBOUR_KINDS))), "facing": jnp.zeros(n, jnp.int32)}


# ----------------------------------------------------------------- shared simulations

_SIMS: dict = {}


def shared_simulation(cfg):
    """One Simulation per compiled shape for the whole session (its jitted chunk compiles once)."""
    from evodevo.config import compile_key
    from evodevo.world.sim import Simulation

    k = compile_key(cfg)
    if k not in _SIMS:
        _SIMS[k] = Simulation(cfg)
    return _SIMS[k]


@pytest.fixture(scope="session")
def simulation():
    """`simulation(cfg) -> Simulation`, shared by every test that asks for the same compiled shape."""
    return shared_simulation


@pytest.fixture(scope="session")
def sim(tiny_cfg):
    """The shared Simulation of the tiny preset."""
    return shared_simulation(tiny_cfg)


@pytest.fixture(scope="session")
def state(sim):
    """A fresh SimState of the tiny preset, shared: copy it before `run_chunk` (which donates)."""
    return sim.init()


@pytest.fixture
def shared_simulations(monkeypatch):
    """Make Runner.create/Runner.load build their Simulation through `shared_simulation`."""
    from evodevo.world import runner

    monkeypatch.setattr(runner, "Simulation", shared_simulation)
    return shared_simulation


# ----------------------------------------------------------------- one uninterrupted run

UNINTERRUPTED_STEPS = 325  # not a multiple of chunk_steps=50 (a masked chunk tail); past max_age (300)


@pytest.fixture(scope="session")
def uninterrupted(tiny_cfg, tmp_path_factory):
    """The tiny preset run uninterrupted for UNINTERRUPTED_STEPS steps (checkpointing only at its end):
    (its final state on the host, its lifetimes.jsonl). The reference of every test that stops, kills,
    breaks or resumes a run: they must end with the same lives and state."""
    import dataclasses

    from evodevo.world.runner import Runner

    cfg = dataclasses.replace(tiny_cfg, run=dataclasses.replace(tiny_cfg.run, checkpoint_every=10**6))
    runner = Runner.create(tmp_path_factory.mktemp("uninterrupted") / "run", cfg, sim=shared_simulation(cfg))
    assert runner.advance(UNINTERRUPTED_STEPS)
    return finished_run(runner)


def finished_run(runner):
    """Close `runner`: (its state, a numpy copy safe from buffer donation, and its lifetimes.jsonl)."""
    import numpy as np

    from evodevo.world.runner import LIFETIMES

    state = jax.tree.map(np.array, jax.device_get(runner.state))
    runner.close()
    return state, (runner.run_dir / LIFETIMES).read_text()


def lives_until(text: str, step: int) -> str:
    """The lines of a lifetimes.jsonl text whose lives ended by `step` (what a run stopped there logged)."""
    return "".join(line for line in text.splitlines(keepends=True) if json.loads(line)["death_step"] <= step)


# ----------------------------------------------------------------- subprocesses


def evodevo_argv() -> list[str]:
    """argv prefix of the installed `evodevo` console script (falls back to `python -m evodevo.cli`)."""
    script = Path(sys.executable).parent / "evodevo"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "evodevo.cli"]


@pytest.fixture(scope="session")
def evodevo_cmd():
    return evodevo_argv()


@pytest.fixture(scope="session")
def cli_env():
    """Environment for `evodevo` subprocesses: CPU JAX sharing this session's compilation cache."""
    env = dict(os.environ)
    env.update(JAX_CACHE_ENV)
    env.setdefault("JAX_PLATFORMS", "cpu")
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ----------------------------------------------------------------- background jobs

_JOB_DIR = Path(tempfile.mkdtemp(prefix="evodevo-test-jobs-"))
atexit.register(shutil.rmtree, _JOB_DIR, ignore_errors=True)
TWO_DEVICE_CHUNKS = 4  # of the tiny preset's 50 steps: lives end and newborns come from the pool
# name -> (argv, extra environment, the job it starts after or None); "{out}" in an argument is the job's
# output path (in this session's job directory), "{job}" the script tests/jobs/<name>.py.
BACKGROUND_JOBS = {
    "two_devices": ([sys.executable, "{job}", str(CONFIGS / "tiny.yaml"), "{out}.npz", str(TWO_DEVICE_CHUNKS)],
                    {"XLA_FLAGS": f"{XLA_FLAGS} --xla_force_host_platform_device_count=2"}, None),
    "gpu_preset": ([sys.executable, "{job}", str(CONFIGS / "gpu.yaml")], {}, None),
    "bare_agents": ([sys.executable, "{job}", str(CONFIGS / "tiny.yaml"), "{out}.npz"], {}, None),  # TD(lambda), K = M = 0
    "textures": ([sys.executable, "{job}"], {}, None),
    # test_scale.py's births and growth one at a time and in batches: two compiles of born and grow, after
    # bare_agents (by then the main process has written the tiny preset's founders into the session's cache)
    "birth_batches": ([sys.executable, "{job}", str(CONFIGS / "tiny.yaml"), "{out}.npz", "3"], {}, "bare_agents"),  # the viewer's: Craftax's texture cache, written once per install
    # test_cli.py's run, killed and resumed to the uninterrupted run's length: two processes of the tiny preset. It
    # starts once bare_agents is done, by when the main process has compiled the tiny chunk into the session's
    # cache, so it loads it (~70 s less).
    "cli_chain": ([sys.executable, "{job}", "{out}", str(UNINTERRUPTED_STEPS), *evodevo_argv()],
                  {"PYTHONUNBUFFERED": "1"}, "bare_agents"),
}
_JOBS: dict = {}  # name -> (a thread that starts the job and waits for it, its output path)
_PROCS: dict = {}  # name -> its process, once started
_STOPPING = threading.Event()  # the session ended: a job still waiting for its turn never starts
_TIMES: dict = {}  # name -> (start, end) in seconds since the jobs were started: the summary shows the suite's critical path
_T0 = [0.0]


def pytest_configure(config):
    config.addinivalue_line("markers", "background(name): reads the result of a BACKGROUND_JOBS job (conftest.py)")


def _run_job(name: str, after: threading.Thread | None) -> None:
    """Run one job to its end (after the thread of the job it follows), its output in files: a job whose
    pipe nobody reads would block on a full pipe."""
    if after is not None:
        after.join()
    if _STOPPING.is_set():
        return
    argv, extra, _ = BACKGROUND_JOBS[name]
    out, job = _JOB_DIR / name, ROOT / "tests" / "jobs" / f"{name}.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", **JAX_CACHE_ENV, **extra}
    with open(f"{out}.stdout", "w") as o, open(f"{out}.stderr", "w") as e:
        # Niced: the jobs take the core the main process leaves idle, not the main process's own.
        proc = subprocess.Popen(["nice", "-n", "10", *(a.format(out=out, job=job) for a in argv)], env=env,
                                cwd=ROOT, stdout=o, stderr=e, text=True)
        _PROCS[name] = proc
        start = time.monotonic() - _T0[0]
        proc.wait()
        _TIMES[name] = (start, time.monotonic() - _T0[0])


def pytest_collection_modifyitems(session, config, items):
    """Run the tests that read a background job last (in their order), so the jobs have the whole suite to finish in."""
    waits = [item for item in items if item.get_closest_marker("background")]
    items[:] = [item for item in items if not item.get_closest_marker("background")] + waits


def pytest_collection_finish(session):
    """Start the background job of every selected test that reads one (after the job it follows, where that one
    runs too): once `-k` and the other selections are done, so a deselected test starts no job."""
    names = {m.args[0] for item in session.items for m in item.iter_markers("background")}
    _T0[0] = time.monotonic()
    for name in sorted(names - set(_JOBS), key=lambda n: BACKGROUND_JOBS[n][2] in names):
        after = _JOBS.get(BACKGROUND_JOBS[name][2])
        thread = threading.Thread(target=_run_job, args=(name, after and after[0]), daemon=True)
        thread.start()
        _JOBS[name] = (thread, _JOB_DIR / name)


def pytest_sessionfinish(session, exitstatus):
    _STOPPING.set()
    for proc in _PROCS.values():
        if proc.poll() is None:
            proc.kill()


def pytest_terminal_summary(terminalreporter):
    """When each background job ran, in seconds after collection: the suite's other critical path."""
    if _TIMES:
        spans = ", ".join(f"{name} {a:.0f}-{b:.0f}" for name, (a, b) in sorted(_TIMES.items(), key=lambda kv: kv[1]))
        terminalreporter.write_line(f"background jobs (s after collection): {spans}")


@pytest.fixture(scope="session")
def background():
    """`background(name) -> (subprocess.CompletedProcess, its output path)`, once the job is done."""
    done: dict = {}

    def result(name):
        _TIMES.setdefault("(the main process's own tests)", (0.0, time.monotonic() - _T0[0]))
        if name not in done:
            thread, out = _JOBS[name]
            thread.join(timeout=900)
            assert not thread.is_alive(), f"background job {name} still running after 900 s"
            assert name in _PROCS, f"background job {name} did not start"
            proc = _PROCS[name]
            read = lambda suffix: Path(f"{out}.{suffix}").read_text()  # noqa: E731
            done[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, read("stdout"), read("stderr")), out)
        return done[name]

    return result


def job_report(completed) -> dict:
    """The JSON line a tests/jobs/ script ends with (the job must have succeeded)."""
    assert completed.returncode == 0, f"background job failed:\n{completed.stderr[-3000:]}"
    return json.loads(completed.stdout.strip().splitlines()[-1])
