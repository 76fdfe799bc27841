"""What every agent kind offers the simulation step (`evodevo.world.sim`), as one typed Protocol.

Two kinds implement it: `learner.Learner` (transformer agents assembled from genes, learning
online) and `random_agent.RandomAgents` (the baseline: no genes, no learning). Everything is a
pure function over an explicit state pytree with a leading slot axis, except `newborn` and
`insert_layer`, which build or change one agent (no slot axis). A kind knows nothing of the
gene pool: it receives gene weights as flat vectors and hands back what a life changed.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evodevo.config import AgentsConfig


@struct.dataclass
class Senses:
    """What an agent senses besides the observation ([N] each)."""

    age: jax.Array  # int32 steps since birth
    pos: jax.Array  # [N, 2] int32 true position in its world
    prev_action: jax.Array  # int32 the action it took last step, -1 for a newborn
    body: jax.Array  # [N, BODY] health, food, drink, energy (each / 9, in [0, 1]) and asleep (0 or 1)
    # What lies beside it ([N, 4, K]: the tiles LEFT, RIGHT, UP, DOWN x the world's `neighbour_kinds`)
    # and which of the four it faces ([N] int32), read by its reflex (agents.reflex), and the moves
    # toward the nearest of each kind in view ([N, 4, K]), read by its taxis (agents.seek), and how
    # much it needs what each kind gives ([N, K], agents.reflex_need), which scales the reflex's
    # pulls. A hand-built Senses for an agent without a reflex may leave them out.
    near: jax.Array | None = None
    facing: jax.Array | None = None
    seen: jax.Array | None = None
    need: jax.Array | None = None
    threat: jax.Array | None = None  # [N] 1 where a hostile mob is in view (fear, agents.drive_fear); None: 0
    danger: jax.Array | None = None  # [N] hostile health beside it or in view, in zombies (agents.drive_danger); None: 0
    control: jax.Array | None = None  # [N] bool: the life is in the in-run control (agents.control_share); None: none is


def in_control(agent_id, share):
    """Whether each life is in the in-run control (agents.control_share): by agents.control it learns nothing,
    learns from the hand-set drives instead of its inherited ones, or carries no memory between steps. Chosen by a
    multiplicative hash of the agent id (Knuth's), whose fractions spread evenly over consecutive ids, so the controls
    are born beside the learners, in the same worlds and from the same pool. jax or numpy."""
    xp = jnp if isinstance(agent_id, jax.Array) else np
    return (xp.asarray(agent_id).astype(xp.uint32) * xp.uint32(2654435761)).astype(xp.float32) / 2.0**32 < share


def teachers(first_parent, agent_id, new_id, share):
    """(src [N], found [N] bool): the slot holding each newborn's first parent (agent ids `first_parent` [N], -1: none;
    `agent_id` [N]: the slots' lives this step, living or dying), found where there is one in the newborn's (`new_id`)
    half of the in-run control: what a parent learned passes on within a half (agents.fast_inherit). The slots' ids
    are distinct, so a search in their sorted order finds each: N log N, not an [N, N] match every step."""
    order = jnp.argsort(agent_id)
    src = order[jnp.clip(jnp.searchsorted(agent_id[order], first_parent), 0, agent_id.shape[0] - 1)]
    found = (first_parent >= 0) & (agent_id[src] == first_parent)
    return src, found & (in_control(new_id, share) == in_control(agent_id, share)[src])


BODY = ("health", "food", "drink", "energy", "asleep")
NEEDS = 4  # the first NEEDS body variables are the needs the drives keep at their setpoint (1: full)
# The weights of an agent's reward (a drive gene): curiosity, one drive per need, the reward at death,
# forage: curiosity's weight per unit of the agent's most depleted of food and drink; and fear: curiosity's
# weight while a hostile mob is in view; play: curiosity's weight while the agent is young (age < agents.play_age);
# danger: a drive over the health left in the hostile mobs beside it (`Senses.danger`). Appended last.
DRIVES = ("curiosity", "health", "food", "drink", "energy", "death", "forage", "fear", "play", "danger")
# The rows of a reflex gene: turn to a kind of tile beside it; DO when facing it; with agents.seek,
# move toward the nearest one in view (a taxis).
REFLEXES = ("toward", "use", "seek")


@struct.dataclass
class LifeEnd:
    """What the agents hand to the gene pool about their lives so far ([N] leading axis); the
    learned change of each gene comes from `learned_change`, for the lives that ended only."""

    gates: jax.Array  # [N, L, 2] current gate alphas of its layers
    progress: jax.Array  # [N] learning progress in [-1, 1] (relative fall of its forward loss)


class AgentKind(Protocol):
    n: int  # slots

    def genes(self) -> dict[str, Callable[[jax.Array], dict]]:
        """{gene kind: key -> a fresh random gene's named tensors}: the genes this kind is built
        from ({} for a kind without genes: then the simulation keeps no pool)."""

    def newborn(self, genes: dict | None, active, gates, key) -> Any:
        """One agent (no slot axis) from flat inherited genes {kind: [P] or [L, P]}, its active
        layer slots [L] and their gate alphas [L, 2]."""

    def act(self, hp: AgentsConfig, agents, obs, senses: Senses, key) -> tuple[jax.Array, Any, Any]:
        """(actions [N] int32, agents having seen obs (memory, caches, statistics), `pending`: this
        step's act as `learn` and `carry` need it, within the step)."""

    def carry(self, pending) -> Any:
        """The arrays of `pending` that the next step's `learn` needs (kept in the simulation state)."""

    def learn(self, hp: AgentsConfig, agents, carried, pending, senses: Senses, terminal, valid
              ) -> tuple[Any, jax.Array, dict]:
        """One online update from transition t, after the act of step t+1: `carried` is the act on
        s_t (`carry` of the last step), `pending` the act on s_{t+1} (its value is the bootstrap, so
        no second forward pass is needed), `terminal` [N] whether the life ended on the transition,
        `valid` [N] whether the slot has one. Returns (agents, broken [N] bool, metrics {name: [N]})."""

    def inherit_learning(self, hp: AgentsConfig, born, parents, src, take) -> Any:
        """`born` (the agents with this step's newborns in place) where `take` [N]: newborn s starts with part of
        what the agent in row src[s] of `parents` (the agents before the births) learned in life (agents.fast_inherit)."""

    def life_end(self, agents) -> LifeEnd:
        """What each slot's life so far hands to the gene pool."""

    def learned_change(self, agent) -> dict:
        """One agent's (no slot axis) lifetime learning as flat genes {kind: [P] or [L, P]}."""

    def learned_kinds(self) -> tuple[str, ...]:
        """The gene kinds that lifetime learning changes (`learned_change` is zero for the others)."""

    def wants_layer(self, hp: AgentsConfig, agents, ages) -> tuple[Any, jax.Array]:
        """Development trigger: (agents, grow [N] bool) for living agents of `ages`."""

    def insert_layer(self, agent, p, gene, key) -> Any:
        """One agent with layer gene `gene` (flat [P]) inserted at position p behind closed gates."""

    def drive_weights(self, hp: AgentsConfig, agents) -> jax.Array:
        """[N, len(DRIVES)] the weights of each agent's reward."""

    def instinct(self, agents) -> jax.Array | None:
        """[N, A] each agent's inherited bias of its policy's logits (None: the kind has none)."""

    def reflex(self, agents) -> jax.Array | None:
        """[N, R, K] each agent's inherited reflex (rows `REFLEXES[:R]`) to the K kinds (None: none)."""

    def bytes_per_slot(self, agents) -> int:
        """Memory of one slot's agent state."""
