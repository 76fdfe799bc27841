"""The `random` agent kind: uniformly random actions, no learning, no genome.

It is the baseline for benchmarks and ablations, and the smallest example of the
agent-kind interface the simulation loop calls (see `evodevo.world.sim`):

    init(key)                                   -> (agents, pool)
    act(agents, pool, obs, ctx, key)            -> (actions[N], pending)
    learn(agents, pool, pending, obs, ctx, terminal, key)
                                                -> (agents, broken[N], metrics{name: [N]})
    turnover(agents, pool, ended, key)          -> (agents, pool, {"parents": [N, 2], other per-slot
                                                    life records such as "fitness": [N]})
    genome(agents)                              -> {name: [N, ...]} recorded per life
    describe_life(record)                       -> extra JSON fields of one finished life
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


class RandomAgents:
    def __init__(self, n_slots: int, num_actions: int):
        self.n = n_slots
        self.num_actions = num_actions

    def init(self, key):
        del key
        return {}, {}

    def act(self, agents, pool, obs, ctx, key):
        return jax.random.randint(key, (self.n,), 0, self.num_actions, dtype=jnp.int32), None

    def learn(self, agents, pool, pending, obs, ctx, terminal, key):
        return agents, jnp.zeros(self.n, bool), {}

    def turnover(self, agents, pool, ended, key):
        return agents, pool, {"parents": jnp.full((self.n, 2), -1, jnp.int32)}

    def genome(self, agents):
        return {}

    def describe_life(self, rec):
        return {}

    def bytes_per_slot(self, agents):
        return 0
