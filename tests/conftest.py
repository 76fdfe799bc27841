"""Shared test fixtures.

JAX compiles are the cost of this suite (10-40 s each on a 2-core CPU), so:

* a persistent compilation cache lives for the pytest session (a temporary directory,
  removed at exit): a second `Simulation` of the same config, and the `evodevo` processes
  started by the CLI tests, load compiled code instead of compiling it again;
* `simulation(cfg)` returns one shared `Simulation` per compiled shape, and the
  `shared_simulations` fixture makes `Runner.create/load` use those shared objects.

Tests that use `Simulation.run_chunk` must remember that it donates its input state.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

# ----------------------------------------------------------------- compilation cache

_JAX_CACHE = tempfile.mkdtemp(prefix="evodevo-test-jax-cache-")
atexit.register(shutil.rmtree, _JAX_CACHE, ignore_errors=True)
JAX_CACHE_ENV = {
    "JAX_COMPILATION_CACHE_DIR": _JAX_CACHE,
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
}
jax.config.update("jax_compilation_cache_dir", _JAX_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


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


# ----------------------------------------------------------------- subprocesses


@pytest.fixture(scope="session")
def evodevo_cmd():
    """argv prefix of the installed `evodevo` console script (falls back to `python -m evodevo.cli`)."""
    script = Path(sys.executable).parent / "evodevo"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "evodevo.cli"]


@pytest.fixture(scope="session")
def cli_env():
    """Environment for `evodevo` subprocesses: CPU JAX sharing this session's compilation cache."""
    env = dict(os.environ)
    env.update(JAX_CACHE_ENV)
    env.setdefault("JAX_PLATFORMS", "cpu")
    env["PYTHONUNBUFFERED"] = "1"
    return env
