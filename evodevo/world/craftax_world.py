"""The continuous Craftax world: N worlds, one per agent slot, generated once, never reset.

Craftax has no respawn. `ContinuousWorld.respawn` revives a slot's player with the
fresh stats of that world's first player (kept from generation as `newborn`) while
the map, mobs, plants and placed blocks persist, at its world's birthplace with the
hostile mobs around it removed (`birthplace`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from enum import IntEnum

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evodevo.config import WorldConfig
from evodevo.treeutil import select
from evodevo.world import birthplace, view

# Craftax's own timestep limit must never end a life; day/night keeps cycling.
NEVER = 2**31 - 1
MAX_NEED = 9.0  # health, food, drink and energy run from 0 to 9


class Cause(IntEnum):
    """Why a life ended: what lowered health on the fatal step (see `ContinuousWorld.death_cause`).
    0 means the slot's agent is still alive."""

    alive = 0
    zombie = 1  # Classic: a zombie's attack (2 damage, 7 on a sleeping player)
    arrow = 2  # Classic: a skeleton's arrow (2 damage)
    starvation = 3  # health lost a point to a need, food at 0
    thirst = 4  # ... drink at 0
    exhaustion = 5  # ... energy at 0 while awake
    lava = 6  # stepped into lava
    old_age = 7  # age >= world.max_age
    broken = 8  # non-finite parameters or losses (learning agents)
    won = 9  # full Craftax: the final boss was beaten
    health = 10  # health <= 0 by another cause (full Craftax's mobs and projectiles)


@dataclass(frozen=True)
class EnvSpec:
    """What differs between Craftax-Classic and full Craftax: for the continuous world and for
    the viewer (the one table of per-environment facts; the viewer reads it, never the reverse)."""

    player_fields: tuple[str, ...]  # reset to the newborn's values at respawn
    mobs: tuple[tuple[str, str], ...]  # (EnvState field, role): every mob group and hostile projectile
    spawn_blocks: tuple[int, ...]  # block types a newborn may stand on
    levels: bool  # map and mobs have a leading level axis
    achievements: tuple[str, ...]  # lower-case achievement names, in Craftax order
    map_obs_shape: tuple[int, int, int]  # (rows, cols, channels) of the map part of the observation
    renderer: str  # module with Craftax's make_craftax_pixel_renderer (viewer)
    constants: str  # module with Action, BlockType, load_all_textures (viewer)

    # Roles in `mobs`: "passive", "melee" and "ranged" mobs occupy mob_map (the latter two are
    # hostile); a "projectile" is hostile and not in mob_map. The viewer colours them by role.
    @property
    def mob_groups(self) -> tuple[str, ...]:
        """Every mob group with a health field."""
        return tuple(name for name, role in self.mobs if role != "projectile")

    @property
    def hostile_in_mob_map(self) -> tuple[str, ...]:
        """Hostile mob groups that occupy mob_map."""
        return tuple(name for name, role in self.mobs if role in ("melee", "ranged"))

    @property
    def projectiles(self) -> tuple[str, ...]:
        """Hostile projectiles (not in mob_map)."""
        return tuple(name for name, role in self.mobs if role == "projectile")


# env name -> the Craftax module with its Achievement, BlockType and textures
CONSTANTS = {
    "Craftax-Classic-Symbolic-v1": "craftax.craftax_classic.constants",
    "Craftax-Symbolic-v1": "craftax.craftax.constants",
}


def achievement_names(env: str) -> tuple[str, ...]:
    """The env's lower-case achievement names in Craftax order, without building the env (reports)."""
    return tuple(a.name.lower() for a in importlib.import_module(CONSTANTS[env]).Achievement)


def _classic_spec():
    from craftax.craftax_classic.constants import BlockType
    from craftax.craftax_classic.envs.craftax_symbolic_env import (
        CraftaxClassicSymbolicEnvNoAutoReset,
        get_map_obs_shape,
    )

    spec = EnvSpec(
        player_fields=(
            "player_direction", "player_health", "player_food", "player_drink", "player_energy",
            "is_sleeping", "player_recover", "player_hunger", "player_thirst", "player_fatigue",
            "inventory", "achievements",
        ),
        mobs=(("cows", "passive"), ("zombies", "melee"), ("skeletons", "ranged"), ("arrows", "projectile")),
        spawn_blocks=(BlockType.GRASS.value, BlockType.SAND.value, BlockType.PATH.value),
        levels=False,
        achievements=achievement_names("Craftax-Classic-Symbolic-v1"),
        map_obs_shape=tuple(get_map_obs_shape()),
        renderer="craftax.craftax_classic.renderer",
        constants=CONSTANTS["Craftax-Classic-Symbolic-v1"],
    )
    return CraftaxClassicSymbolicEnvNoAutoReset(), spec


def _full_spec():
    from craftax.craftax.constants import BlockType
    from craftax.craftax.envs.craftax_symbolic_env import CraftaxSymbolicEnvNoAutoReset, get_map_obs_shape

    spec = EnvSpec(
        player_fields=(
            "player_level", "player_direction", "player_health", "player_food", "player_drink",
            "player_energy", "player_mana", "is_sleeping", "is_resting", "player_recover",
            "player_hunger", "player_thirst", "player_fatigue", "player_recover_mana", "player_xp",
            "player_dexterity", "player_strength", "player_intelligence", "inventory",
            "learned_spells", "sword_enchantment", "bow_enchantment", "armour_enchantments",
            "achievements",
        ),
        mobs=(("passive_mobs", "passive"), ("melee_mobs", "melee"), ("ranged_mobs", "ranged"),
              ("mob_projectiles", "projectile")),
        spawn_blocks=(BlockType.GRASS.value, BlockType.SAND.value, BlockType.PATH.value),
        levels=True,
        achievements=achievement_names("Craftax-Symbolic-v1"),
        map_obs_shape=tuple(get_map_obs_shape()),
        renderer="craftax.craftax.renderer",
        constants=CONSTANTS["Craftax-Symbolic-v1"],
    )
    return CraftaxSymbolicEnvNoAutoReset(), spec


# What `ContinuousWorld.neighbours` reports of the four tiles beside a player: a hostile mob (a zombie;
# a skeleton), a passive one (a cow), water, a ripe plant: what a strike, a meal or a drink is for.
NEIGHBOUR_KINDS = ("hostile", "passive", "water", "ripe_plant")
# Which of the body's variables (`ContinuousWorld.body`) each kind replenishes: a cow and a ripe plant food,
# water drink; -1: none (a hostile mob)
KIND_NEEDS = (-1, 1, 2, 1)
STEPS = ((0, -1), (0, 1), (-1, 0), (1, 0))  # (row, col) of the moves LEFT, RIGHT, UP, DOWN (Action 1-4)

# env name -> its builder of (Craftax env, EnvSpec); the viewer draws exactly these envs
ENVS = {
    "Craftax-Classic-Symbolic-v1": _classic_spec,
    "Craftax-Symbolic-v1": _full_spec,
}


@struct.dataclass
class WorldState:
    env: object  # batched Craftax EnvState, leading axis = slot
    obs: jax.Array  # [N, obs_dim] symbolic observation of each slot
    newborn: object  # batched player fields (incl. position) of each world's first player


def strong_dtypes(tree):
    """Cast weak-typed leaves to their strong dtype (Craftax's reset leaves some weak)."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), tree)


class ContinuousWorld:
    """N never-resetting Craftax worlds. All methods are pure and jittable."""

    def __init__(self, cfg: WorldConfig):
        self.cfg = cfg
        self.env, self.spec = ENVS[cfg.env]()
        self.params = self.env.default_params.replace(max_timesteps=NEVER)
        self.n = cfg.n_slots
        self.num_actions = self.env.num_actions
        self.obs_dim = int(self.env.observation_space(self.params).shape[0])
        self.achievement_names = self.spec.achievements
        self.action_names = tuple(a.name.lower() for a in importlib.import_module(self.spec.constants).Action)
        self.neighbour_kinds = NEIGHBOUR_KINDS
        # Jitted: op by op, the generator dispatched hundreds of small programs, each compiled on first use
        # (tiny preset: 23 s the first time, 0.6-2.8 s every time after; jitted 8 s once, 0.04 s after).
        self.init = jax.jit(self._generate)

    # ------------------------------------------------------------------ init

    def _generate(self, key) -> WorldState:
        """N fresh worlds (`init`, jitted)."""
        keys = jax.random.split(key, self.n)
        obs, env = jax.vmap(self.env.reset_env, in_axes=(0, None))(keys, self.params)
        env = strong_dtypes(env)
        # Own copies: the chunk donates its input, and a buffer may be donated only once.
        newborn = jax.tree.map(jnp.copy, self._player(env))
        newborn["player_position"] = jnp.copy(env.player_position)
        return WorldState(env=env, obs=strong_dtypes(obs), newborn=newborn)

    def _player(self, env) -> dict:
        return {name: getattr(env, name) for name in self.spec.player_fields}

    # ------------------------------------------------------------------ step

    def step(self, ws: WorldState, actions, key):
        """Advance every slot once. Returns (world, cause[N]) with Craftax's own deaths."""
        keys = jax.random.split(key, self.n)
        obs, env, _reward, _done, _info = jax.vmap(self.env.step_env, in_axes=(0, 0, 0, None))(
            keys, ws.env, actions, self.params
        )
        # Craftax's extrinsic reward is discarded on purpose: agents learn from curiosity only.
        return (ws.replace(env=self._bury_despawned(env), obs=obs, newborn=birthplace.move_nest(self, ws, env)),
                self.death_cause(ws.env, env))

    def _bury_despawned(self, env):
        """Zero the health of mobs that are gone (despawned or killed).

        Craftax's DO action recomputes every mob's mask as `health > 0`, so a zombie that
        despawned with health left comes back at its stale position (and outside mob_map).
        In an episodic game this is rare; in a world that never resets such ghosts pile up.
        """
        groups = {}
        for name in self.spec.mob_groups:
            mobs = getattr(env, name)
            groups[name] = mobs.replace(health=jnp.where(mobs.mask, mobs.health, 0).astype(mobs.health.dtype))
        return env.replace(**groups)

    def death_cause(self, pre, post):
        """Cause per slot of a Craftax game-over (never the timestep limit), from what lowered
        health on this step: `pre` and `post` are the batched EnvStates around it. In order:
        lava (health set to 0); a zombie that attacked (Classic: adjacent, its cooldown just reset
        to 5); another loss of 2 or more (Classic: an arrow); a point lost to a need (the recover
        counter fell below -15 and reset to 0), named by the need at 0 (food, drink, then energy).
        """
        dead = post.player_health <= 0
        need = (pre.player_recover < -13.0) & (post.player_recover == 0.0)
        which_need = jnp.where(post.player_food <= 0, Cause.starvation, jnp.where(
            post.player_drink <= 0, Cause.thirst, jnp.where(post.player_energy <= 0, Cause.exhaustion, Cause.health)))
        cause = jnp.where(need, which_need, Cause.health)
        if not self.spec.levels:
            z = post.zombies
            near = jnp.abs(z.position - post.player_position[:, None, :]).sum(-1) == 1
            zombie = (z.mask & near & (z.attack_cooldown == 5)).any(-1)
            arrow = pre.player_health - post.player_health >= 2
            cause = jnp.where(zombie, Cause.zombie, jnp.where(arrow, Cause.arrow, cause))
            pos = post.player_position
            on_lava = post.map[jnp.arange(self.n), pos[:, 0], pos[:, 1]] == _lava_value()
            cause = jnp.where(on_lava, Cause.lava, cause)
        cause = jnp.where(dead, cause, Cause.alive)
        if self.spec.levels:
            from craftax.craftax.game_logic import has_beaten_boss

            won = jax.vmap(has_beaten_boss, in_axes=(0, None))(post, self.env.static_env_params)
            cause = jnp.where((cause == Cause.alive) & won, Cause.won, cause)
        if self.cfg.immortal:
            cause = jnp.zeros_like(cause)
        return cause.astype(jnp.int32)

    def body(self, ws: WorldState):
        """[N, 5] each player's body: health, food, drink, energy (each / 9) and asleep (0 or 1)."""
        e = ws.env
        needs = jnp.stack([e.player_health, e.player_food, e.player_drink, e.player_energy], -1) / MAX_NEED
        return jnp.concatenate([needs.astype(jnp.float32), e.is_sleeping[:, None].astype(jnp.float32)], -1)

    def sleeping(self, ws: WorldState):
        """[N] bool: which players are asleep."""
        return ws.env.is_sleeping.astype(bool)

    # ------------------------------------------------------------------ respawn

    def respawn(self, ws: WorldState, mask) -> WorldState:
        """Revive the players of slots where `mask` is True; the worlds persist."""

        def revive(env, newborn):
            fresh = env.replace(**{k: v for k, v in newborn.items() if k != "player_position"})
            pos = birthplace.spawn_position(self, fresh, newborn["player_position"])
            fresh = fresh.replace(player_position=pos)
            return birthplace.clear_hostiles(self, fresh, pos)

        def do(ws):
            revived = jax.vmap(revive)(ws.env, ws.newborn)
            env = select(mask, revived, ws.env)
            obs = jax.vmap(self.env.get_obs)(env)
            return ws.replace(env=env, obs=jnp.where(mask[:, None], obs, ws.obs))

        return jax.lax.cond(mask.any(), do, lambda ws: ws, ws)

    # ------------------------------------------------------------------ reading

    def position(self, ws: WorldState):
        """[N, 2] player positions (row, col) in map cells."""
        return ws.env.player_position

    def history(self, ws: WorldState) -> dict:
        """What a world's inhabitants have made of it (niche construction): {name: [N]} per world, on
        the ground level: growing and ripe plants (saplings planted), crafting tables and furnaces
        (placed), trees and stone left (cut and mined ones are gone), and hostile mobs within
        spawn_clear_radius of the world's birthplace; and `shelter`, how many of the player's four
        neighbouring tiles no mob can step onto (solid blocks, lava, the map's edge): a player walled
        in on all four cannot be reached by a zombie, and plants are walls; `room` and `water_in_reach`, how far
        it could walk and whether it could drink (`view.room`)."""
        constants = importlib.import_module(self.spec.constants)
        blocks = constants.BlockType
        ground = ws.env.map[:, 0] if self.spec.levels else ws.env.map

        def count(*kinds):
            return jnp.isin(ground, jnp.asarray([b.value for b in kinds])).sum((-2, -1))

        spawn = ws.newborn["player_position"]
        near = jnp.zeros(self.n, jnp.int32)
        for name in self.spec.hostile_in_mob_map:
            mobs = getattr(ws.env, name)
            pos, mask = (mobs.position[:, 0], mobs.mask[:, 0]) if self.spec.levels else (mobs.position, mobs.mask)
            close = jnp.abs(pos - spawn[:, None, :]).max(-1) <= self.cfg.spawn_clear_radius
            near = near + (close & mask).sum(-1)
        closed = jnp.isin(jnp.arange(len(blocks)), jnp.asarray(np.asarray(constants.SOLID_BLOCKS).tolist() + [blocks.LAVA.value]))
        _, block, inside = self.tiles(ws, STEPS)
        shelter = (~inside | closed[block]).sum(-1)
        room, water_in_reach = view.room(self, ws, closed)
        return {"plants": count(blocks.PLANT, blocks.RIPE_PLANT), "ripe_plants": count(blocks.RIPE_PLANT),
                "tables": count(blocks.CRAFTING_TABLE), "furnaces": count(blocks.FURNACE),
                "trees": count(blocks.TREE), "stone": count(blocks.STONE), "spawn_hostiles": near,
                "shelter": shelter, "room": room, "water_in_reach": water_in_reach}

    def tiles(self, ws: WorldState, offsets):
        """The tiles at `offsets` [T, 2] (row, col) from each player (`STEPS`: the four beside it), on
        its level: ([N, T, 2] cells, [N, T] their blocks (the map's edge clipped), [N, T] inside the map)."""
        ground = ws.env.map[jnp.arange(self.n), ws.env.player_level] if self.spec.levels else ws.env.map
        rows, cols = ground.shape[-2:]
        cells = ws.env.player_position[:, None, :] + jnp.asarray(offsets)
        inside = (cells[..., 0] >= 0) & (cells[..., 0] < rows) & (cells[..., 1] >= 0) & (cells[..., 1] < cols)
        r, c = jnp.clip(cells[..., 0], 0, rows - 1), jnp.clip(cells[..., 1], 0, cols - 1)
        return cells, ground[jnp.arange(self.n)[:, None], r, c], inside

    def mobs_on_level(self, ws: WorldState, role, health: bool = False) -> list:
        """[(positions [N, M, 2], alive [N, M])] of each kind of mob whose role is in `role` ("melee",
        "ranged", "passive"), on each player's level; with `health`, each with its mobs' health [N, M] last."""
        level = ws.env.player_level if self.spec.levels else None
        out = []
        for name, kind in self.spec.mobs:
            if kind in role:
                m = getattr(ws.env, name)
                fields = (m.position, m.mask, m.health) if health else (m.position, m.mask)
                if self.spec.levels:  # [N, levels, M, ...] -> the player's level
                    fields = tuple(f[jnp.arange(self.n), level] for f in fields)
                out.append(fields)
        return out

    def neighbours(self, ws: WorldState):
        """What lies beside each player, as an animal's reflexes would read it: ([N, 4, K] float32,
        1 where the tile one step LEFT, RIGHT, UP, DOWN (the move actions' order) holds each of
        `NEIGHBOUR_KINDS`; [N] int32 the one of those four the player faces). On the player's
        level; beyond the map's edge nothing."""
        blocks = importlib.import_module(self.spec.constants).BlockType
        tiles, block, inside = self.tiles(ws, STEPS)

        def mobs_of(role):  # [N, 4] a living mob of this role stands on the tile
            hit = jnp.zeros(tiles.shape[:2], bool)
            for pos, mask in self.mobs_on_level(ws, role):
                hit = hit | ((pos[:, None, :, :] == tiles[:, :, None, :]).all(-1) & mask[:, None, :]).any(-1)
            return hit

        near = jnp.stack([mobs_of(view.HOSTILE), mobs_of(("passive",)), block == blocks.WATER.value,
                          block == blocks.RIPE_PLANT.value], -1) & inside[..., None]
        return near.astype(jnp.float32), (ws.env.player_direction - 1).astype(jnp.int32)

    def in_view(self, ws: WorldState):  # [N, 4, K] the moves toward the nearest of each kind in view
        return view.in_view(self, ws)

    def threat(self, ws: WorldState):  # [N] 1 where a hostile mob is in view
        return view.threat(self, ws)

    def danger(self, ws: WorldState, in_view: bool = False):  # [N] the hostile health beside (or in view)
        return view.danger(self, ws, in_view)

    def need_of_kinds(self, ws: WorldState):
        """[N, K] how much each player needs what each of `neighbour_kinds` gives (`KIND_NEEDS`): 1 - food
        for a cow or a ripe plant, 1 - drink for water, 1 for a hostile mob (a fight is no need of the body)."""
        need = jnp.concatenate([1.0 - self.body(ws), jnp.ones((self.n, 1))], -1)  # [N, BODY + 1]: -1 is the last
        return need[:, jnp.asarray(KIND_NEEDS)]

    def map_size(self) -> tuple[int, int]:
        return tuple(self.env.static_env_params.map_size)

    def achievements(self, ws: WorldState):
        """[N, A] bool: achievements unlocked in the current life of each slot."""
        return ws.env.achievements.astype(bool)


def _lava_value() -> int:
    from craftax.craftax_classic.constants import BlockType

    return BlockType.LAVA.value
