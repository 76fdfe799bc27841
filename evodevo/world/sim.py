"""The simulation step, the one place where the agents and the gene pool meet.

`sim_step` is pure and reads top to bottom:

    world    world.step(world, actions chosen last step)       -> obs', cause of death
    act      kind.act(agents, obs', senses')                   -> next actions, pending (incl. V(s'))
    learn    kind.learn(agents, carried, pending, ...)         -> agents', broken (the transition just made;
                                                                  the act's value is its bootstrap)
    tell     strategy.tell(pool, lives that ended)             -> pool'  (credit, ES, archive, updates)
    ask      strategy.ask(pool, candidates)                    -> genomes and parents of newborns
    born     kind.newborn(strategy.gather(pool, genome))       -> fresh agents in the freed slots (inherit_learning)
    grow     kind.wants_layer, strategy.offer_layer, kind.insert_layer  -> a gated layer inserted
    respawn  world.respawn(world, died)

Learning lags acting by one step: the transition s_t -> s_{t+1} is learned after the act on s_{t+1}, whose
forward pass gives the bootstrap V(s_{t+1}) that a second pass computed before, and the gradient comes from the
act on s_t (its VJP carried in the state, `SimState.carry`). So an action is chosen by weights one update old,
and a newborn's first step is a rest (NOOP): it first acts on the observation after it. A kind without genes
(random agents) has no pool: tell, ask, born and grow are skipped. Float hyperparameters (`config.Hyper`) are a
traced argument of the jitted chunk: changing one does not recompile it. The PRNG key is carried in the state
and split once per step, so a run does not depend on how its steps are grouped into chunks; a shorter chunk
masks its tail steps instead of compiling a second shape.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evodevo.agents.kind import DRIVES, REFLEXES, AgentKind, Senses, in_control, teachers
from evodevo.agents.learner import AgentState, Learner
from evodevo.agents.random_agent import RandomAgents, RandomState
from evodevo.config import Config, Hyper, hyperparams
from evodevo.genepool import report
from evodevo.genepool.genome import Genome, compact
from evodevo.genepool.pool import GenePool
from evodevo.genepool.strategy import GeneStrategy, Lives
from evodevo.treeutil import row, select
from evodevo.world import hosts, sharding
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
    agents: AgentState | RandomState  # the agent kind's state, leading axis = slot
    pool: GenePool | None  # None for a kind without genes
    genomes: Genome | None  # [N] each slot's genome (layers grown in during life included); None without genes
    slots: Slots
    action: jax.Array  # [N] int32 the action each slot chose on its last observation (-1: a newborn, none yet)
    fresh: jax.Array  # [N] bool no transition to learn on the next step (a newborn, or a layer grew in since)
    carry: Any  # the kind's act of the last step, as its next learn needs it (`AgentKind.carry`)
    next_agent_id: jax.Array  # int32
    births: jax.Array  # int32, cumulative
    deaths: jax.Array  # [len(Cause)] int32, cumulative by cause (index 0 unused)


def make_kind(cfg: Config, world: ContinuousWorld) -> AgentKind:
    if cfg.agents.kind == "random":
        return RandomAgents(world.n, world.num_actions, cfg.agents.l_max)
    return Learner(cfg.agents, world)


def pack_bits(flags):
    """bool[..., A] -> uint32[..., ceil(A/32)] (achievements per life, compact for the host)."""
    a = flags.shape[-1]
    words = -(-a // 32)
    padded = jnp.zeros(flags.shape[:-1] + (words * 32,), jnp.uint32).at[..., :a].set(flags)
    weights = jnp.left_shift(jnp.uint32(1), jnp.arange(32, dtype=jnp.uint32))
    return (padded.reshape(flags.shape[:-1] + (words, 32)) * weights).sum(-1, dtype=jnp.uint32)


def birth_batch(setting: int, n: int) -> int:
    """Slots born (or grown a layer) per vectorised batch: `run.birth_batch`, or for 0: 1 on a CPU
    (where a batch costs its padded rows too: benchmarks/births.py measured no gain) and n/64 rounded
    up to a power of two on an accelerator (64 at 4,096 slots, where ~35 die a step: one batch)."""
    if setting:
        return setting
    return 1 if jax.default_backend() == "cpu" else min(n, 1 << ((n - 1) // 64).bit_length())


class Simulation:
    """Static description of a run: the world, the agent kind, the gene strategy, the jitted chunk."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.hp = hyperparams(cfg)
        self.world = ContinuousWorld(cfg.world)
        self.kind = make_kind(cfg, self.world)
        genes = self.kind.genes()
        self.strategy = (GeneStrategy(cfg.genepool, genes, cfg.agents.l_max, cfg.agents.init_depth,
                                      self.kind.learned_kinds()) if genes else None)
        self.n = self.world.n
        self.mesh = sharding.slot_mesh(self.n, cfg.run.devices)  # None: one device
        self.batch = birth_batch(cfg.run.birth_batch, self.n)
        self._chunk = jax.jit(self._run_chunk, static_argnums=2, donate_argnums=0)
        # (hp, key) -> (agents, pool, genomes) of the first generation; jitted once per Simulation, since a
        # fresh jax.jit of the bound method compiled again on every init (13 s for the tiny preset here)
        self.founders = jax.jit(self._founders)
        self._shapes = {}  # what depends on the config's shapes only, computed once: `template`, `_empty_carry`

    # ------------------------------------------------------------------ state

    def init(self, hp: Hyper | None = None) -> SimState:
        return self.place(self._fresh(self.hp if hp is None else hp))

    def _fresh(self, hp: Hyper) -> SimState:
        key = jax.random.PRNGKey(self.cfg.seed)
        key, k_world, k_agents = jax.random.split(key, 3)
        world = self.world.init(k_world)
        agents, pool, genomes = self.founders(hp, k_agents)
        n = self.n
        return SimState(
            step=jnp.int32(0), key=key, world=world, agents=agents, pool=pool, genomes=genomes,
            action=jnp.full(n, -1, jnp.int32), fresh=jnp.ones(n, bool), carry=self._empty_carry(hp, agents, world),
            slots=Slots(
                agent_id=jnp.arange(n, dtype=jnp.int32), birth_step=jnp.zeros(n, jnp.int32),
                parents=jnp.full((n, 2), -1, jnp.int32),
            ),
            next_agent_id=jnp.int32(n), births=jnp.int32(0), deaths=jnp.zeros(len(Cause), jnp.int32),
        )

    def shardings(self, state: SimState):
        """Where each leaf of a state lives: per-slot arrays split over the devices, the gene pool
        replicated (None on one device)."""
        if self.mesh is None:
            return None
        return sharding.shardings(self.mesh, state, self.n, replicate=lambda path: path[0].name == "pool")

    def place(self, state: SimState) -> SimState:
        """`state` (fresh, or restored from a checkpoint) laid out over the devices."""
        return state if self.mesh is None else hosts.put(state, self.shardings(state))

    def template(self) -> SimState:
        """Shapes and dtypes of a fresh state (checkpoints restore into them), traced once: nothing allocated."""
        if "state" not in self._shapes:
            self._shapes["state"] = jax.eval_shape(lambda: self._fresh(self.hp))
        return self._shapes["state"]

    def _empty_carry(self, hp: Hyper, agents, world: WorldState):
        """Zeros shaped like the kind's carried act (`fresh` slots never read it; traced once per Simulation)."""
        if "carry" not in self._shapes:
            self._shapes["carry"] = jax.eval_shape(lambda a, w: self.kind.carry(self.kind.act(
                hp.agents, a, w.obs, self.senses(None, w, 0, jnp.full(self.n, -1, jnp.int32)), jax.random.PRNGKey(0)
            )[2]), agents, world)
        return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), self._shapes["carry"])

    def _founders(self, hp: Hyper, key):
        """(agents, pool, genomes) of the first generation: genomes drawn uniformly from a fresh pool."""
        k_pool, k_agents = jax.random.split(key)
        keys = jax.random.split(k_agents, self.n)
        if self.strategy is None:
            return jax.vmap(lambda k: self.kind.newborn(None, None, None, k))(keys), None, None
        pool = self.strategy.init(hp.genepool, k_pool)
        genomes = jax.vmap(lambda k: self.strategy.fresh_genome(pool, k, False, hp.agents.init_gate))(keys)
        agents = jax.vmap(lambda g, k: self.kind.newborn(self.strategy.gather(pool, g), g.active, g.gates, k))(
            genomes, keys)
        return agents, pool, genomes

    def senses(self, state: SimState, world: WorldState, step, prev_action) -> Senses:
        """What an agent senses besides the observation: its age (0 without a `state`), place, last action, body,
        what lies beside it, what a taxis or the readout sees further off (agents.seek, fast_input=view), its need of
        each kind (agents.reflex_need), whether a hostile mob is in view (agents.drive_fear) and the health left in
        those beside it (drive_danger)."""
        near, facing = self.world.neighbours(world)
        seen = self.world.in_view(world) if self.cfg.agents.seek or self.cfg.agents.fast_input == "view" else None
        need = self.world.need_of_kinds(world) if self.cfg.agents.reflex_need else None
        age = jnp.zeros(self.n, jnp.int32) if state is None else step - state.slots.birth_step
        return Senses(age=age, pos=self.world.position(world), prev_action=prev_action, body=self.world.body(world),
                      near=near, facing=facing, seen=seen, need=need, threat=self.world.threat(world),
                      danger=self.world.danger(world, self.cfg.agents.danger_range == "view"))

    # ------------------------------------------------------------------ one step

    def sim_step(self, state: SimState, hp: Hyper):
        key, k_act, k_env, k_life = jax.random.split(state.key, 4)
        # A newborn has chosen nothing yet: its world takes a NOOP (action 0 in both Craftax games).
        executed = jnp.maximum(state.action, 0)
        world, cause = self.world.step(state.world, executed, k_env)
        step = state.step + 1
        age = step - state.slots.birth_step
        if not self.cfg.world.immortal:
            cause = jnp.where((cause == Cause.alive) & (age >= self.cfg.world.max_age), Cause.old_age, cause)
        control = in_control(state.slots.agent_id, hp.agents.control_share)  # the in-run control (agents.control)
        senses = self.senses(state, world, step, state.action).replace(control=control)
        actions, agents, pending = self.kind.act(hp.agents, state.agents, world.obs, senses, k_act)
        learns = ~state.fresh & ~(control & (self.cfg.agents.control == "learning"))  # such a control keeps its state
        agents, broken, metrics = self.kind.learn(hp.agents, agents, state.carry, pending, senses, cause != Cause.alive,
                                                  learns)
        cause = jnp.where(broken, Cause.broken, cause).astype(jnp.int32)
        died = cause != Cause.alive

        achieved = self.world.achievements(world)
        record = {"agent_id": state.slots.agent_id, "birth_step": state.slots.birth_step,
                  "parents": state.slots.parents, "achievements": pack_bits(achieved),
                  "asleep": self.world.sleeping(state.world)}  # at the start of the fatal step
        pool, genomes, parents = state.pool, state.genomes, jnp.full((self.n, 2), -1, jnp.int32)
        grown, new_ids = jnp.zeros(self.n, bool), state.next_agent_id + jnp.cumsum(died, dtype=jnp.int32) - 1
        if self.strategy is not None:
            lives = self.lives(hp, agents, pool, genomes, died, broken, age, achieved, state.slots.agent_id)
            record.update(self.genome_record(genomes, lives.gates, lives.fitness))
            agents, pool, genomes, parents, grown = self.lifecycle(hp, agents, pool, lives, step, k_life, new_ids)
        world = self.world.respawn(world, died)
        state = state.replace(action=jnp.where(died, -1, actions), fresh=died | grown, carry=self.kind.carry(pending))
        return self.next_state(state, key, step, world, agents, pool, genomes, died, parents, cause, new_ids), {
            "cause": cause.astype(jnp.int8), "action": executed.astype(jnp.int8),
            # what each agent faced when it chose its next action (bit k: the world's neighbour_kinds[k]), and
            # that action: how often it strikes a zombie, drinks water, eats a cow or a plant in front of it
            "faced": pack_bits(senses.near[jnp.arange(self.n), senses.facing] > 0)[:, 0].astype(jnp.int8),
            "chosen": actions.astype(jnp.int8), "record": record, "metrics": metrics}

    def lives(self, hp: Hyper, agents, pool: GenePool, genomes: Genome, died, broken, age, achieved, agent_id) -> Lives:
        """Every slot's life as the gene pool sees it this step (fitness so far; the lives that ended)."""
        end = self.kind.life_end(agents)
        fitness = self.strategy.fitness(hp.genepool, pool, age, end.progress, achieved)
        return Lives(ended=died & ~broken, living=~died, genome=genomes, gates=end.gates, fitness=fitness,
                     lifespan=age, agent_id=agent_id, change=lambda s: self.kind.learned_change(row(agents, s)))

    def lifecycle(self, hp: Hyper, agents, pool: GenePool, lives: Lives, step, key, new_ids):
        """tell -> ask -> born (with what a parent learned, agents.fast_inherit) -> grow. A broken life is not
        told: it never writes into the pool. Returns (agents, pool, genomes, parents, grown [N] bool)."""
        k_tell, k_ask, k_grow = jax.random.split(key, 3)
        died = ~lives.living
        pool = self.strategy.tell(hp.genepool, pool, lives, step, k_tell)
        pool, newborn, parents = self.strategy.ask(hp.genepool, pool, lives, died, k_ask, hp.agents.init_gate)
        genomes = select(died, newborn, lives.genome)
        src, found = teachers(parents[:, 0], lives.agent_id, new_ids, hp.agents.control_share)
        agents = self.kind.inherit_learning(hp.agents, self.born(pool, agents, genomes, died, k_ask), agents, src,
                                            died & found)
        agents, genomes, grown = self.grow(hp, pool, agents, genomes, jnp.where(died, 0, lives.lifespan), k_grow)
        return agents, pool, genomes, parents, grown

    def born(self, pool: GenePool, agents, genomes: Genome, died, key):
        """Fresh agents in the freed slots: a birth costs one agent's gather, not the population's."""
        def one(s, _):
            g = row(genomes, s)
            return self.kind.newborn(self.strategy.gather(pool, g), g.active, g.gates,
                                     jax.random.fold_in(jax.random.fold_in(key, s), 1))

        return self.each_slot(died, one, agents)

    def grow(self, hp: Hyper, pool: GenePool, agents, genomes: Genome, ages, key):
        """Development: triggered agents get a layer gene offered by the pool, behind closed gates.
        Returns (agents, genomes, grown [N] bool)."""
        if self.cfg.agents.develop == "none":
            return agents, genomes, jnp.zeros(self.n, bool)
        agents, grow = self.kind.wants_layer(hp.agents, agents, ages)

        def one(s, rows):
            agent, genome = rows
            k_offer, k_insert = jax.random.split(jax.random.fold_in(key, s))
            genome, p, gene = self.strategy.offer_layer(pool, genome, k_offer)
            return self.kind.insert_layer(agent, p, gene, k_insert), genome

        return *self.each_slot(grow, one, (agents, genomes)), grow

    def each_slot(self, mask, fn, tree):
        """`tree` with row s replaced by `fn(s, row s)` for every slot s where `mask`: B slots
        (`self.batch`) vmapped at a time, and a loop over batches only in a step with more than B.
        The rows are independent (keyed by slot), so the result is the same for every B."""
        n, b = self.n, self.batch
        size = -(-n // b) * b
        order = jnp.nonzero(mask, size=size, fill_value=n)[0]
        # Padding: distinct indices past the end (the scatter drops them), so the indices stay unique and sorted.
        order = jnp.where(order < n, order, n + jnp.arange(size))

        def batch(i, tree):
            idx = jax.lax.dynamic_slice_in_dim(order, i * b, b)
            s = jnp.minimum(idx, n - 1)  # a padded entry computes a row for the last slot, then is dropped
            new = jax.vmap(fn)(s, row(tree, s))
            return jax.tree.map(lambda x, r: x.at[idx].set(r, mode="drop", unique_indices=True,
                                                           indices_are_sorted=True), tree, new)

        return jax.lax.fori_loop(0, (mask.sum() + b - 1) // b, batch, tree)

    def next_state(self, state: SimState, key, step, world, agents, pool, genomes, died, parents, cause, new_ids):
        """The bookkeeping of slots: ids (`new_ids` where `died`), birth steps and parents of the newborns, counters."""
        n_died = died.sum(dtype=jnp.int32)
        slots = state.slots.replace(
            agent_id=jnp.where(died, new_ids, state.slots.agent_id),
            birth_step=jnp.where(died, step, state.slots.birth_step),
            parents=jnp.where(died[:, None], parents, state.slots.parents),
        )
        return state.replace(
            step=step, key=key, world=world, agents=agents, pool=pool, genomes=genomes, slots=slots,
            next_agent_id=state.next_agent_id + n_died,
            births=state.births + n_died, deaths=state.deaths.at[cause].add(1).at[0].set(0),
        )

    # ------------------------------------------------------------------ what people read

    def genome_record(self, genomes: Genome, gates, fitness) -> dict:
        """Per slot: the genome at birth and now, the gate alphas now ([N, L, 2]), and the lifetime
        fitness so far. The genome as born is the genome without the layers grown in since (a
        genome's own gates are the inherited ones; learned gates live in the agent)."""
        born = jax.vmap(lambda g: compact(g, ~g.developmental))(genomes)
        return {"encoder_id": genomes.gene_id("encoder"), "layer_id": genomes.layer_id,
                "head_id": genomes.gene_id("head"), "drive_id": genomes.gene_id("drive"),
                "developmental": genomes.developmental, "gates": gates,
                "layer_id_birth": born.layer_id, "gates_birth": born.gates, "fitness": fitness}

    def genome_arrays(self, state: SimState) -> dict:
        """What the viewer shows of every slot's genome (with "fitness"), as fresh device arrays
        (never views of the state, which the next chunk donates); {} without genes."""
        if self.strategy is None:
            return {}
        return self._genome_arrays(state, self.hp)

    @functools.partial(jax.jit, static_argnums=0)
    def _genome_arrays(self, state: SimState, hp: Hyper) -> dict:
        age = state.step - state.slots.birth_step
        end = self.kind.life_end(state.agents)
        fitness = self.strategy.fitness(hp.genepool, state.pool, age, end.progress,
                                        self.world.achievements(state.world))
        return self.genome_record(state.genomes, end.gates, fitness)

    @staticmethod
    def describe_life(rec: dict) -> dict:
        """JSON genome (at birth and at death) and fitness of one finished life (numpy, no slot axis)."""
        if "layer_id" not in rec:
            return {}
        on = np.asarray(rec["layer_id"]) >= 0
        born = np.asarray(rec["layer_id_birth"]) >= 0
        return {"genome": {
            "encoder": int(rec["encoder_id"]), "head": int(rec["head_id"]), "drive": int(rec["drive_id"]),
            "layers_birth": np.asarray(rec["layer_id_birth"])[born].tolist(),
            "gates_birth": np.round(np.asarray(rec["gates_birth"], np.float64)[born], 4).tolist(),
            "layers": np.asarray(rec["layer_id"])[on].tolist(),
            "gates_death": np.round(np.asarray(rec["gates"], np.float64)[on], 4).tolist(),
            "developmental": np.asarray(rec["developmental"])[on].tolist(),
        }, "fitness": round(float(rec["fitness"]), 5)}

    def pool_report(self, state: SimState) -> dict | None:
        """Host copies (on every process) of the pool's statistics and the genomes' shapes
        (genepool.report); None without genes."""
        if self.strategy is None:
            return None
        living = jnp.ones(self.n, bool)
        view = report.pool_view(state.pool, state.genomes, self.strategy.carriers(state.genomes, living),
                                self.kind.life_end(state.agents).gates, self.hp.genepool.shrink_k)
        return hosts.fetch(view)

    def pool_summary(self, state: SimState) -> dict:
        """What the viewer's pool panel shows ({} without genes)."""
        view = self.pool_report(state)
        return {} if view is None else report.summary(view, int(state.step))

    def drive_weights(self, state: SimState, hp: Hyper | None = None) -> dict:
        """{drive name: [N]} each agent's reward weights (host numpy)."""
        w = hosts.fetch(self.kind.drive_weights((self.hp if hp is None else hp).agents, state.agents))
        return {name: np.asarray(w[:, i]) for i, name in enumerate(DRIVES)}

    def instincts(self, state: SimState) -> dict:
        """{action name: [N]} each agent's inherited bias of its policy toward the action ({}: none)."""
        b = self.kind.instinct(state.agents)
        b = None if b is None else hosts.fetch(b)
        return {} if b is None else {name: np.asarray(b[:, i]) for i, name in enumerate(self.world.action_names)}

    def reflexes(self, state: SimState) -> dict:
        """{"<toward|use|seek>_<neighbour kind>": [N]} each agent's inherited reflex ({}: none)."""
        b = self.kind.reflex(state.agents)
        if b is None:
            return {}
        b = np.asarray(hosts.fetch(b))
        return {f"{row}_{kind}": b[:, i, j] for i, row in zip(range(b.shape[1]), REFLEXES)
                for j, kind in enumerate(self.world.neighbour_kinds)}

    def world_history(self, state: SimState) -> dict:
        """{name: (mean over worlds, spread)} of `ContinuousWorld.history` (host floats)."""
        counts = hosts.fetch(self._world_history(state))
        return {k: (float(np.mean(v)), float(np.std(v))) for k, v in counts.items()}

    @functools.partial(jax.jit, static_argnums=0)
    def _world_history(self, state: SimState) -> dict:
        return self.world.history(state.world)

    def bytes_per_slot(self, state: SimState) -> int:
        return self.kind.bytes_per_slot(state.agents)

    # ------------------------------------------------------------------ chunks

    def _run_chunk(self, state: SimState, hp: Hyper, length: int, n):
        out_shape = jax.eval_shape(lambda s: self.sim_step(s, hp)[1], state)

        def skip(s):
            return s, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), out_shape)

        def body(s, i):
            return jax.lax.cond(i < n, lambda s: self.sim_step(s, hp), skip, s)

        state, out = jax.lax.scan(body, state, jnp.arange(length))
        if self.mesh is not None:  # the next chunk's input keeps this layout (else: a new compile)
            state = jax.lax.with_sharding_constraint(state, self.shardings(state))
        return state, out

    def run_chunk(self, state: SimState, n: int | None = None, hp: Hyper | None = None, length: int | None = None):
        """Advance `n` (<= length) steps with hyperparameters `hp` (default: this config's) in a compiled
        chunk of `length` steps (default run.chunk_steps; each length compiles once: a probe of every step
        runs length 1, as a long chunk's skipped steps still copy the state). Returns (state, per-step
        outputs [length, ...]). The input state is donated: do not use it afterwards."""
        length = self.cfg.run.chunk_steps if length is None else length
        n = length if n is None else n
        if not 0 <= n <= length:
            raise ValueError(f"run_chunk: n={n} must be within [0, length={length}]")
        return self._chunk(state, self.hp if hp is None else hp, length, jnp.int32(n))
