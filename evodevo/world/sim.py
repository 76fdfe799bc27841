"""The simulation step and the jitted chunk of steps.

`sim_step` is pure: act -> world step -> learn -> deaths -> births. The PRNG key is
carried in the state and split once per step, so a run does not depend on how its
steps are grouped into chunks. `run_chunk` scans a fixed number of steps; a shorter
request masks the tail steps instead of compiling a second shape.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
from flax import struct

from evodevo.config import Config
from evodevo.world.craftax_world import Cause, ContinuousWorld, WorldState


@struct.dataclass
class Slots:
    agent_id: jax.Array  # [N] int32, unique over the run, increasing with birth
    birth_step: jax.Array  # [N] int32
    parents: jax.Array  # [N, 2] int32 parent agent ids, -1 where none


@struct.dataclass
class SimState:
    step: jax.Array  # int32: completed simulation steps
    key: jax.Array  # uint32[2]
    world: WorldState
    agents: object  # agent-kind pytree, leading axis = slot
    pool: object  # gene pool pytree (empty for random agents)
    slots: Slots
    prev_action: jax.Array  # [N] int32, the action each slot took last step (-1 for newborns)
    next_agent_id: jax.Array  # int32
    births: jax.Array  # int32, cumulative
    deaths: jax.Array  # [len(Cause)] int32, cumulative by cause (index 0 unused)


def make_agents(cfg: Config, world: ContinuousWorld):
    if cfg.agents.kind == "random":
        from evodevo.agents.random_agent import RandomAgents

        return RandomAgents(world.n, world.num_actions)
    if cfg.agents.kind == "transformer":
        from evodevo.agents.learner import TransformerAgents

        return TransformerAgents(cfg, world)
    raise ValueError(f"agents.kind '{cfg.agents.kind}' is not available")


def pack_bits(flags):
    """bool[..., A] -> uint32[..., ceil(A/32)] (achievements per life, compact for the host)."""
    a = flags.shape[-1]
    words = -(-a // 32)
    padded = jnp.zeros(flags.shape[:-1] + (words * 32,), jnp.uint32).at[..., :a].set(flags)
    weights = jnp.left_shift(jnp.uint32(1), jnp.arange(32, dtype=jnp.uint32))
    return (padded.reshape(flags.shape[:-1] + (words, 32)) * weights).sum(-1, dtype=jnp.uint32)


class Simulation:
    """Static description of a run: the world, the agent kind, and the jitted chunk."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.world = ContinuousWorld(cfg.world)
        self.agents = make_agents(cfg, self.world)
        self.n = self.world.n
        self._chunk = jax.jit(self._run_chunk, static_argnums=1, donate_argnums=0)

    # ------------------------------------------------------------------ state

    def init(self) -> SimState:
        key = jax.random.PRNGKey(self.cfg.seed)
        key, k_world, k_agents = jax.random.split(key, 3)
        # World generation runs op by op: jitting Craftax's generator costs 20-120 s of compile.
        world = self.world.init(k_world)
        agents, pool = jax.jit(self.agents.init)(k_agents)
        n = self.n
        return SimState(
            step=jnp.int32(0),
            key=key,
            world=world,
            agents=agents,
            pool=pool,
            slots=Slots(
                agent_id=jnp.arange(n, dtype=jnp.int32),
                birth_step=jnp.zeros(n, jnp.int32),
                parents=jnp.full((n, 2), -1, jnp.int32),
            ),
            prev_action=jnp.full(n, -1, jnp.int32),
            next_agent_id=jnp.int32(n),
            births=jnp.int32(0),
            deaths=jnp.zeros(len(Cause), jnp.int32),
        )

    def context(self, state: SimState, world: WorldState, step) -> dict:
        """What an agent senses besides the observation: its age and place."""
        return {
            "age": step - state.slots.birth_step,
            "pos": self.world.position(world),
            "prev_action": state.prev_action,
        }

    # ------------------------------------------------------------------ reading (viewer, checkpoints)

    def genome_arrays(self, state: SimState) -> dict:
        """{name: [N, ...]}: the agent kind's genome arrays plus "fitness" [N] float32, each slot's
        lifetime fitness so far (what selection would credit if it died now); {} for random agents."""
        if self.cfg.agents.kind == "random":
            return {}
        age = state.step - state.slots.birth_step
        fitness = self.agents.fitness(state.agents, state.pool, age, self.world.achievements(state.world))
        return {**self.agents.genome(state.agents), "fitness": fitness.astype(jnp.float32)}

    def pool_summary(self, state: SimState) -> dict:
        """The gene pool panel's summary (genepool.report.summary, with the lineage {gene id: parent
        id} of the living genes); {} for random agents."""
        if self.cfg.agents.kind == "random":
            return {}
        return self.agents.pool_summary(state.pool, state.agents, int(state.step))

    # ------------------------------------------------------------------ one step

    def sim_step(self, state: SimState):
        key, k_act, k_env, k_learn, k_birth = jax.random.split(state.key, 5)
        ctx = self.context(state, state.world, state.step)
        actions, pending = self.agents.act(state.agents, state.pool, state.world.obs, ctx, k_act)
        world, cause = self.world.step(state.world, actions, k_env)

        step = state.step + 1
        age = step - state.slots.birth_step
        if not self.cfg.world.immortal:
            cause = jnp.where((cause == Cause.alive) & (age >= self.cfg.world.max_age), Cause.old_age, cause)
        ctx_next = self.context(state.replace(prev_action=actions), world, step)
        agents, broken, metrics = self.agents.learn(
            state.agents, state.pool, pending, world.obs, ctx_next, cause != Cause.alive, k_learn
        )
        cause = jnp.where(broken, Cause.broken, cause).astype(jnp.int32)
        died = cause != Cause.alive

        record = {
            "agent_id": state.slots.agent_id,
            "birth_step": state.slots.birth_step,
            "parents": state.slots.parents,
            "achievements": pack_bits(self.world.achievements(world)),
            **self.agents.genome(agents),
        }
        ended = {"cause": cause, "broken": cause == Cause.broken, "lifespan": age, "agent_id": state.slots.agent_id,
                 "achievements": self.world.achievements(world), "step": step}
        agents, pool, lives = self.agents.turnover(agents, state.pool, ended, k_birth)
        parents = lives.pop("parents")
        record.update(lives)  # e.g. the lifetime fitness of the lives that ended
        world = self.world.respawn(world, died)

        new_ids = state.next_agent_id + jnp.cumsum(died, dtype=jnp.int32) - 1
        n_died = died.sum(dtype=jnp.int32)
        slots = Slots(
            agent_id=jnp.where(died, new_ids, state.slots.agent_id),
            birth_step=jnp.where(died, step, state.slots.birth_step),
            parents=jnp.where(died[:, None], parents, state.slots.parents),
        )
        new_state = state.replace(
            step=step,
            key=key,
            world=world,
            agents=agents,
            pool=pool,
            slots=slots,
            prev_action=jnp.where(died, -1, actions),
            next_agent_id=state.next_agent_id + n_died,
            births=state.births + n_died,
            deaths=state.deaths.at[cause].add(1).at[0].set(0),
        )
        out = {"cause": cause.astype(jnp.int8), "action": actions.astype(jnp.int8), "record": record,
               "metrics": metrics}
        return new_state, out

    # ------------------------------------------------------------------ chunks

    def _run_chunk(self, state: SimState, length: int, n):
        out_shape = jax.eval_shape(lambda s: self.sim_step(s)[1], state)

        def skip(s):
            return s, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), out_shape)

        def body(s, i):
            return jax.lax.cond(i < n, self.sim_step, skip, s)

        return jax.lax.scan(body, state, jnp.arange(length))

    def run_chunk(self, state: SimState, n: int | None = None):
        """Advance `n` (<= chunk_steps) steps. Returns (state, per-step outputs [chunk_steps, ...]).

        The input state is donated: do not use it afterwards.
        """
        length = self.cfg.run.chunk_steps
        n = length if n is None else n
        if not 0 <= n <= length:
            raise ValueError(f"run_chunk: n={n} must be within [0, run.chunk_steps={length}]")
        return self._chunk(state, length, jnp.int32(n))
