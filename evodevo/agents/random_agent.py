"""The `random` agent kind: uniformly random actions, no genes, no learning (`kind.AgentKind`).

It is the baseline for benchmarks and ablations: the simulation keeps no gene pool for it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from evodevo.agents.kind import DRIVES, LifeEnd


@struct.dataclass
class RandomState:
    """Nothing to remember: a random agent is the same at every step."""


class RandomAgents:
    def __init__(self, n_slots: int, num_actions: int, l_max: int = 1):
        self.n = n_slots
        self.num_actions = num_actions
        self.l_max = l_max

    def genes(self) -> dict:
        return {}

    def newborn(self, genes, active, gates, key) -> RandomState:
        return RandomState()

    def act(self, hp, agents, obs, senses, key):
        return jax.random.randint(key, (self.n,), 0, self.num_actions, dtype=jnp.int32), agents, None

    def carry(self, pending):
        return None

    def learn(self, hp, agents, carried, pending, senses, terminal, valid):
        return agents, jnp.zeros(self.n, bool), {}

    def life_end(self, agents) -> LifeEnd:
        return LifeEnd(gates=jnp.zeros((self.n, self.l_max, 2)), progress=jnp.zeros(self.n))

    def learned_change(self, agent) -> dict:
        return {}

    def inherit_learning(self, hp, born, parents, src, take):
        return born

    def learned_kinds(self) -> tuple[str, ...]:
        return ()

    def wants_layer(self, hp, agents, ages):
        return agents, jnp.zeros(self.n, bool)

    def insert_layer(self, agent, p, gene, key):
        return agent

    def drive_weights(self, hp, agents):
        return jnp.zeros((self.n, len(DRIVES)))

    def instinct(self, agents):
        return None

    def reflex(self, agents):
        return None

    def bytes_per_slot(self, agents) -> int:
        return 0
