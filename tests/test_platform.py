"""The platform: continuous world, simulation loop, statistics, config, runner (resume, signals).

Every test here shares one `Simulation` of configs/tiny.yaml (4 slots, 50-step chunks,
max_age 300; snapshot off) and a few module-level jitted world functions, so the module
compiles only a handful of times. The CLI in subprocesses is tested in test_cli.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from conftest import UNINTERRUPTED_STEPS, finished_run, job_report
from evodevo import config
from evodevo.config import ConfigError
from evodevo.metrics import RecentLives, crafter_score, unpack_bits
from evodevo.world.craftax_world import NEVER, Cause
from evodevo.world.runner import LIFETIMES, Runner
from evodevo.world.sim import pack_bits

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# random agents: no "broken"; Classic: no "won"; every Classic death by health is attributed
ALLOWED_CAUSES = {"zombie", "arrow", "starvation", "thirst", "exhaustion", "lava", "old_age"}


def host(tree):
    """A numpy copy of a pytree (safe from buffer donation)."""
    return jax.tree.map(np.array, jax.device_get(tree))


def device(tree):
    return jax.tree.map(jnp.asarray, tree)


def leaves_with_paths(tree):
    return [(jax.tree_util.keystr(p), x) for p, x in jax.tree_util.tree_leaves_with_path(tree)]


def assert_trees_equal(a, b):
    la, lb = leaves_with_paths(a), leaves_with_paths(b)
    assert [p for p, _ in la] == [p for p, _ in lb]
    for (path, x), (_, y) in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape, path
        assert np.array_equal(x, y), f"leaf {path} differs"


def take(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


# --------------------------------------------------------------------------- shared objects


@pytest.fixture(scope="module")
def world(sim):
    return sim.world


@pytest.fixture(scope="module")
def stepped(sim, state):
    """Host copy of a SimState after 100 steps of play (maps changed, needs dropped)."""
    state = jax.tree.map(jnp.copy, state)
    state, _ = sim.run_chunk(state)
    state, _ = sim.run_chunk(state)
    return host(state)


@pytest.fixture(scope="module")
def respawn(world):
    return jax.jit(world.respawn)


@pytest.fixture(scope="module")
def world_step(world):
    return jax.jit(world.step)


# --------------------------------------------------------------------------- 1-2: respawn


def test_respawn_keeps_world_and_resets_player(world, stepped, respawn):
    ws = stepped.world
    n = world.n
    env = ws.env
    # Respawn the two most worn players: their needs have dropped since birth.
    worn = np.argsort(env.player_food + env.player_drink + env.player_energy, kind="stable")[:2]
    mask = np.zeros(n, bool)
    mask[worn] = True
    for s in worn:
        assert any(
            not np.array_equal(got[s], want[s])
            for k, v in ws.newborn.items() if k != "player_position"
            for got, want in zip(jax.tree.leaves(getattr(env, k)), jax.tree.leaves(v))
        ), "precondition: the player differs from a newborn"

    new = host(respawn(device(ws), jnp.asarray(mask)))
    e1 = new.env

    for s in worn:
        for name, v in ws.newborn.items():
            if name != "player_position":
                for got, want in zip(jax.tree.leaves(getattr(e1, name)), jax.tree.leaves(v), strict=True):
                    assert np.array_equal(got[s], want[s]), name
        assert e1.player_health[s] == 9 and e1.player_food[s] == 9
        assert e1.player_drink[s] == 9 and e1.player_energy[s] == 9
        assert not e1.is_sleeping[s]
        assert all(int(x[s]) == 0 for x in jax.tree.leaves(e1.inventory))
        assert not e1.achievements[s].any()
        # the world of the slot persists: map, plants, cows, clock
        assert np.array_equal(e1.map[s], env.map[s])
        assert np.array_equal(e1.timestep[s], env.timestep[s])
        assert np.array_equal(e1.light_level[s], env.light_level[s])
        assert_trees_equal(take(e1.cows, s), take(env.cows, s))
        assert np.array_equal(e1.growing_plants_positions[s], env.growing_plants_positions[s])
        # the newborn stands on a free walkable tile
        r, c = e1.player_position[s]
        assert e1.map[s, r, c] in world.spec.spawn_blocks
        assert not e1.mob_map[s, r, c]
        # its observation is a newborn's: empty inventory, intrinsics 9/10, awake
        # (symbolic obs tail: inventory[12], health/food/drink/energy[4], direction[4], light, sleeping)
        assert np.all(new.obs[s, -22:-10] == 0)
        np.testing.assert_allclose(new.obs[s, -10:-6], 0.9, atol=1e-3)
        assert new.obs[s, -1] == 0

    # other slots: untouched, world and player and observation
    for s in np.flatnonzero(~mask):
        assert_trees_equal(take(e1, s), take(env, s))
        assert np.array_equal(new.obs[s], ws.obs[s])
    assert_trees_equal(new.newborn, ws.newborn)


def test_newborn_is_not_next_to_a_hostile_mob(world, stepped, respawn, world_step, key):
    ws = stepped.world
    s = 2
    r = world.cfg.spawn_clear_radius
    mask = np.zeros(world.n, bool)
    mask[s] = True

    # Where would the newborn of slot s stand?  (Adding mobs elsewhere cannot move it.)
    p = host(respawn(device(ws), jnp.asarray(mask))).env.player_position[s]

    env = jax.tree.map(np.array, ws.env)
    mob_map = env.mob_map
    zombies, skeletons, arrows = env.zombies, env.skeletons, env.arrows
    for mobs in (zombies, skeletons):  # free the cells of the mobs we are about to move
        for i in range(mobs.mask.shape[1]):
            if mobs.mask[s, i]:
                mob_map[s, mobs.position[s, i, 0], mobs.position[s, i, 1]] = False
    h, w = mob_map.shape[1:]
    far_r = p[0] + r + 1 if p[0] + r + 1 < h else p[0] - r - 1
    placements = [
        (zombies, 0, (p[0], p[1] + (1 if p[1] + 1 < w else -1)), True),  # next to the newborn: removed
        (zombies, 1, (far_r, p[1]), True),  # just outside the radius: kept
        (skeletons, 0, (p[0] + (2 if p[0] + 2 < h else -2), p[1]), True),  # removed
        (arrows, 0, (p[0] + (1 if p[0] + 1 < h else -1), p[1] + (1 if p[1] + 1 < w else -1)), True),  # removed
    ]
    for mobs, i, pos, alive in placements:
        mobs.position[s, i] = pos
        mobs.mask[s, i] = alive
        mobs.health[s, i] = 3
        if mobs is not arrows:
            mob_map[s, pos[0], pos[1]] = True
    for mobs in (zombies, skeletons, arrows):  # every other hostile of the slot: gone
        for i in range(mobs.mask.shape[1]):
            if not any(m is mobs and j == i for m, j, _, _ in placements):
                if mobs.mask[s, i] and mobs is not arrows:
                    mob_map[s, mobs.position[s, i, 0], mobs.position[s, i, 1]] = False
                mobs.mask[s, i] = False
    before = ws.replace(env=env.replace(mob_map=mob_map, zombies=zombies, skeletons=skeletons, arrows=arrows))

    new = host(respawn(device(before), jnp.asarray(mask))).env
    assert np.array_equal(new.player_position[s], p)
    for name in ("zombies", "skeletons", "arrows"):
        mobs = getattr(new, name)
        cheb = np.abs(mobs.position[s] - p).max(-1)
        assert not (mobs.mask[s] & (cheb <= r)).any(), f"a live {name[:-1]} within {r} of the newborn"
    assert new.zombies.mask[s, 1] and tuple(new.zombies.position[s, 1]) == (far_r, p[1])
    assert new.mob_map[s, far_r, p[1]], "the kept zombie still occupies its cell"
    z0, k0 = placements[0][2], placements[2][2]
    assert not new.mob_map[s, z0[0], z0[1]] and not new.mob_map[s, k0[0], k0[1]], "removed mobs free their cells"
    assert np.array_equal(new.map[s], before.env.map[s])
    assert_trees_equal(take(new.cows, s), take(before.env.cows, s))
    # other slots untouched
    for o in range(world.n):
        if o != s:
            assert_trees_equal(take(new, o), take(before.env, o))

    # Removed mobs stay removed: Craftax-Classic's DO action sets every mob's mask to health > 0, so a
    # removed zombie that kept its health came back next to the newborn on its first DO.
    after = respawn(device(before), jnp.asarray(mask))
    after, _ = world_step(after, jnp.full(world.n, 5, jnp.int32), key)  # 5 = DO, which does not move the player
    after = host(after).env
    for name in ("zombies", "skeletons"):
        mobs = getattr(after, name)
        # the kept zombie (7 away) moves at most one cell; new mobs spawn more than 9 (Manhattan) away
        cheb = np.abs(mobs.position[s] - after.player_position[s]).max(-1)
        assert not (mobs.mask[s] & (cheb <= 3)).any(), f"a removed {name[:-1]} came back after DO"


def test_nest_moves_to_where_the_player_drank(world, stepped, respawn):
    """world.nest=drink: a step on which a player's drink rose moves its world's birthplace to where it
    stands, and the next newborn is born there; other slots, and nest=spawn, keep the spawn point."""
    from evodevo.world import birthplace
    from evodevo.world.craftax_world import ContinuousWorld

    ws = stepped.world
    nesting, fixed = (ContinuousWorld(dataclasses.replace(world.cfg, nest=n)) for n in ("drink", "spawn"))
    spawn = ws.newborn["player_position"].copy()
    drink = ws.env.player_drink.copy()
    drink[0] = 4
    ws0 = ws.replace(env=ws.env.replace(player_drink=drink))
    post = ws.env.replace(player_drink=drink.copy(), player_position=ws.env.player_position.copy())
    post.player_drink[0] = 5  # slot 0 drank
    post.player_drink[1] = drink[1] - 1  # slot 1 grew thirstier
    # slot 0 stands on a free walkable tile away from the spawn point when it drinks
    cells = np.argwhere(np.isin(ws.env.map[0], world.spec.spawn_blocks) & ~ws.env.mob_map[0])
    there = cells[np.abs(cells - spawn[0]).sum(-1).argmax()]
    post.player_position[0] = there
    nest = np.asarray(birthplace.move_nest(nesting, ws0, post)["player_position"])
    assert (nest[0] == there).all() and not (there == spawn[0]).all()
    np.testing.assert_array_equal(nest[1:], spawn[1:])
    np.testing.assert_array_equal(np.asarray(birthplace.move_nest(fixed, ws0, post)["player_position"]), spawn)
    # the next newborn of slot 0 is born at the nest
    mask = np.arange(world.n) == 0
    born = host(respawn(device(ws.replace(newborn=dict(ws.newborn, player_position=nest))), jnp.asarray(mask)))
    np.testing.assert_array_equal(born.env.player_position[0], there)


# --------------------------------------------------------------------------- 3: no timestep limit


def test_no_life_ends_by_the_craftax_timestep_limit(world, world_step, key):
    from craftax.craftax_classic.game_logic import is_game_over

    assert world.params.max_timesteps == NEVER
    ws = world.init(key)
    ws = ws.replace(env=ws.env.replace(timestep=jnp.full_like(ws.env.timestep, 9998)))
    noop = jnp.zeros(world.n, jnp.int32)
    for i in range(5):
        ws, cause = world_step(ws, noop, jax.random.fold_in(key, i))
        assert not np.asarray(cause).any(), f"a life ended at timestep {int(ws.env.timestep[0])}"
    assert (np.asarray(ws.env.timestep) >= 10003).all()
    over = jax.vmap(is_game_over, in_axes=(0, None))
    # Craftax's own limit would have ended every life by now; the continuous world's params do not.
    assert np.asarray(over(ws.env, world.env.default_params)).all()
    assert not np.asarray(over(ws.env, world.params)).any()


# --------------------------------------------------------------------------- 4: vmap == per slot


def test_vmapped_step_equals_per_slot_step(world, world_step, stepped, key):
    ws = device(stepped.world)
    actions = jax.random.randint(jax.random.fold_in(key, 1), (world.n,), 0, world.num_actions, dtype=jnp.int32)
    step_key = jax.random.fold_in(key, 2)
    ws_v, cause = world_step(ws, actions, step_key)
    ws_v = host(ws_v)

    one = jax.jit(lambda k, s, a: world.env.step_env(k, s, a, world.params)[:2])
    keys = jax.random.split(step_key, world.n)  # as ContinuousWorld.step splits its key
    for i in range(world.n):
        obs_i, env_i = one(keys[i], take(ws.env, i), actions[i])
        assert_trees_equal(take(ws_v.env, i), host(world._bury_despawned(env_i)))  # the world's step buries the dead
        assert np.array_equal(ws_v.obs[i], np.asarray(obs_i))
    assert np.array_equal(np.asarray(cause), np.asarray(world.death_cause(ws.env, device(ws_v.env))))


def test_causes_of_death_on_hand_built_states(world, stepped):
    """What lowered health on the fatal step names the cause: a zombie's attack, an arrow, a need
    at zero (the recover counter just reset), lava; a living player has none."""
    from craftax.craftax_classic.constants import BlockType

    pre = stepped.world.env
    n = world.n
    assert n == 4
    pos = pre.player_position
    pre = pre.replace(player_health=np.full(n, 2.0, pre.player_health.dtype),
                      player_recover=np.full(n, -15.5, pre.player_recover.dtype),
                      zombies=pre.zombies.replace(mask=np.zeros_like(pre.zombies.mask)))
    post = pre.replace(player_health=np.zeros(n, pre.player_health.dtype),
                       player_recover=np.full(n, -5.0, pre.player_recover.dtype),
                       player_food=np.full(n, 5, pre.player_food.dtype), player_drink=np.full(n, 5, pre.player_drink.dtype))
    # slot 0: a zombie next to the player that just attacked (cooldown reset to 5)
    z = post.zombies
    post = post.replace(zombies=z.replace(
        position=z.position.copy(), mask=z.mask.copy(), attack_cooldown=z.attack_cooldown.copy()))
    post.zombies.position[0, 0] = pos[0] + np.array([0, 1])
    post.zombies.mask[0, 0] = True
    post.zombies.attack_cooldown[0, 0] = 5
    # slot 1: health 2 -> 0 and no zombie: an arrow
    # slot 2: health 1 -> 0 with the recover counter reset and no food: starvation
    post.player_health[2] = 0
    pre.player_health[2] = 1
    post.player_recover[2] = 0.0
    post.player_food[2] = 0
    # slot 3: standing in lava
    post = post.replace(map=post.map.copy())
    post.map[3, pos[3, 0], pos[3, 1]] = BlockType.LAVA.value
    cause = np.asarray(jax.jit(world.death_cause)(device(pre), device(post)))
    assert [Cause(c).name for c in cause] == ["zombie", "arrow", "starvation", "lava"]
    # the same with drink at zero instead of food: thirst; a cooldown still counting down: no attack
    post.player_food[2], post.player_drink[2] = 3, 0
    post.zombies.attack_cooldown[0, 0] = 4
    cause = np.asarray(jax.jit(world.death_cause)(device(pre), device(post)))
    assert Cause(cause[2]).name == "thirst" and Cause(cause[0]).name == "arrow"
    # alive: health above zero whatever else happened
    post = post.replace(player_health=np.ones(n, post.player_health.dtype))
    assert (np.asarray(jax.jit(world.death_cause)(device(pre), device(post))) == Cause.alive).all()


def test_neighbours_report_what_lies_beside_each_player(world, stepped):
    """What a reflex reads: per tile LEFT, RIGHT, UP, DOWN a hostile mob, a passive one, water, a ripe
    plant, and which tile the player faces; nothing beyond the map's edge, no dead mob."""
    from craftax.craftax_classic.constants import BlockType

    ws = stepped.world
    env = ws.env.replace(map=ws.env.map.copy(), player_position=ws.env.player_position.copy(),
                         player_direction=ws.env.player_direction.copy(),
                         zombies=ws.env.zombies.replace(position=ws.env.zombies.position.copy(),
                                                        mask=ws.env.zombies.mask.copy(), health=ws.env.zombies.health.copy()),
                         cows=ws.env.cows.replace(position=ws.env.cows.position.copy(), mask=ws.env.cows.mask.copy()),
                         skeletons=ws.env.skeletons.replace(mask=np.zeros_like(ws.env.skeletons.mask)))
    env.zombies.mask[:] = False
    env.cows.mask[:] = False
    env.player_position[0] = (20, 20)
    r, c = 20, 20
    for dr, dc in ((0, -1), (0, 1), (-1, 0), (1, 0)):
        env.map[0, r + dr, c + dc] = BlockType.GRASS.value
    env.zombies.position[0, 0], env.zombies.mask[0, 0] = (r, c - 1), True  # LEFT: a zombie
    env.cows.position[0, 0], env.cows.mask[0, 0] = (r - 1, c), True  # UP: a cow
    env.cows.position[0, 1] = (r + 1, c)  # DOWN: a dead cow (masked out): nothing
    env.map[0, r, c + 1] = BlockType.WATER.value  # RIGHT: water, which the player faces
    env.player_direction[0] = 2  # Action.RIGHT
    env.player_position[1] = (0, 20)  # on the top edge: UP is beyond the map
    env.map[1, 1, 20] = BlockType.RIPE_PLANT.value  # DOWN: a ripe plant
    env.player_direction[1] = 3  # Action.UP
    near, facing = jax.jit(world.neighbours)(device(ws.replace(env=env)))
    near, facing = np.asarray(near), np.asarray(facing)
    assert world.neighbour_kinds == ("hostile", "passive", "water", "ripe_plant") and near.shape == (world.n, 4, 4)
    np.testing.assert_array_equal(near[0], [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(near[1, 2], [0, 0, 0, 0])
    np.testing.assert_array_equal(near[1, 3], [0, 0, 0, 1])
    assert facing[0] == 1 and facing[1] == 2
    # what danger reads (agents.drive_danger): the health left in the hostile mobs beside, in zombies
    env.zombies.health[0, 0] = 4.0  # the zombie LEFT, struck once
    danger = jax.jit(world.danger)
    np.testing.assert_allclose(np.asarray(danger(device(ws.replace(env=env))))[0], 0.8, rtol=1e-6)
    in_view = jax.jit(lambda w: world.danger(w, in_view=True))
    np.testing.assert_allclose(np.asarray(in_view(device(ws.replace(env=env))))[0], 0.8, rtol=1e-6)
    # what a taxis reads (agents.seek): the moves toward the nearest of each kind in view, two or more
    # steps away; the view is 7 rows x 9 columns around the player
    env.map[0, r - 4:r + 5, c - 5:c + 6] = BlockType.GRASS.value
    env.map[0, r, c + 1] = BlockType.WATER.value  # beside: not the taxis'
    env.map[0, r + 2, c] = BlockType.WATER.value  # the nearest water further off: DOWN
    env.map[0, r - 1, c - 3] = BlockType.WATER.value  # further still
    env.zombies.position[0, 1], env.zombies.mask[0, 1] = (r - 3, c + 2), True  # UP and RIGHT
    env.zombies.health[0, 1] = 5.0
    np.testing.assert_allclose(np.asarray(danger(device(ws.replace(env=env))))[0], 0.8, rtol=1e-6)  # not beside
    np.testing.assert_allclose(np.asarray(in_view(device(ws.replace(env=env))))[0], 1.8, rtol=1e-6)  # in view
    env.cows.position[0, 0] = (r - 4, c)  # out of view (4 rows up): no cow
    seen = np.asarray(jax.jit(world.in_view)(device(ws.replace(env=env))))
    assert seen.shape == (world.n, 4, 4)
    np.testing.assert_array_equal(seen[0], [[0, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]])
    # what fear reads (agents.drive_fear): a hostile mob in view (world 0: two zombies), none once both are gone
    threat = jax.jit(world.threat)
    assert np.asarray(threat(device(ws.replace(env=env))))[0] == 1.0
    env.zombies.mask[0] = False
    assert np.asarray(threat(device(ws.replace(env=env))))[0] == 0.0
    env.zombies.position[0, 1], env.zombies.mask[0, 1] = (r - 4, c), True  # 4 rows up: out of the 7-row view
    assert np.asarray(threat(device(ws.replace(env=env))))[0] == 0.0
    assert np.asarray(in_view(device(ws.replace(env=env))))[0] == 0.0
    env.zombies.mask[0, 1] = False
    assert np.asarray(danger(device(ws.replace(env=env))))[0] == 0.0  # no living zombie beside
    # what a reflex that acts by need reads (agents.reflex_need): hostile 1, cow and plant by hunger, water by thirst
    env = env.replace(player_food=np.full_like(env.player_food, 6), player_drink=np.full_like(env.player_drink, 3))
    need = np.asarray(jax.jit(world.need_of_kinds)(device(ws.replace(env=env))))
    np.testing.assert_allclose(need[0], [1.0, 1 / 3, 2 / 3, 1 / 3], rtol=1e-6)


def test_world_history_counts_what_inhabitants_made(world, stepped):
    """Plants planted, blocks placed, trees cut, hostiles near the spawn point, the player's shelter (its
    neighbouring tiles that no mob can enter), its room (the tiles it can walk to) and whether water is
    within its reach, per world."""
    from craftax.craftax_classic.constants import BlockType

    ws = stepped.world
    history = jax.jit(world.history)  # one compile for the three reads below
    before = {k: np.asarray(v) for k, v in history(device(ws)).items()}
    env = ws.env.replace(map=ws.env.map.copy(), zombies=ws.env.zombies.replace(
        position=ws.env.zombies.position.copy(), mask=ws.env.zombies.mask.copy()),
        skeletons=ws.env.skeletons.replace(mask=ws.env.skeletons.mask.copy()))
    grass = np.argwhere(env.map[1] == BlockType.GRASS.value)
    for (r, c), block in zip(grass[:4], ("PLANT", "RIPE_PLANT", "CRAFTING_TABLE", "FURNACE")):
        env.map[1, r, c] = BlockType[block].value
    tree = np.argwhere(env.map[2] == BlockType.TREE.value)[0]
    env.map[2, tree[0], tree[1]] = BlockType.GRASS.value
    env.zombies.mask[3] = False
    env.skeletons.mask[3] = False
    env.zombies.mask[3, 0] = True  # one hostile mob in world 3: a zombie 3 cells from its spawn point
    env.zombies.position[3, 0] = ws.newborn["player_position"][3] + np.array([3, 0])
    r, c = env.player_position[0]
    for dr, dc, block in ((0, 1, "PLANT"), (0, -1, "WATER"), (1, 0, "GRASS"), (-1, 0, "RIPE_PLANT")):
        env.map[0, r + dr, c + dc] = BlockType[block].value  # walled in on three sides, grass on the fourth
    after = {k: np.asarray(v) for k, v in history(device(ws.replace(env=env))).items()}
    assert after["shelter"][0] == 3 and 0 <= after["shelter"].min() and after["shelter"].max() <= 4
    env.map[0, r + 1, c] = BlockType.PLANT.value
    walled = {k: np.asarray(v)[0] for k, v in history(device(ws.replace(env=env))).items()}
    assert walled["shelter"] == 4 and walled["room"] == 1 and walled["water_in_reach"] == 1  # water beside it
    env.map[0, r + 1, c] = BlockType.GRASS.value  # a pocket of two tiles: the one below, walled in too
    for dr, dc in ((2, 0), (1, -1), (1, 1)):
        env.map[0, r + dr, c + dc] = BlockType.PLANT.value
    env.map[0, r, c - 1] = BlockType.STONE.value  # and no water
    pocket = {k: np.asarray(v)[0] for k, v in history(device(ws.replace(env=env))).items()}
    assert pocket["room"] == 2 and pocket["water_in_reach"] == 0 and pocket["shelter"] == 3
    assert before["room"].max() > 2 and set(np.unique(before["water_in_reach"])) <= {0, 1}
    assert after["plants"][1] == before["plants"][1] + 2 and after["ripe_plants"][1] == before["ripe_plants"][1] + 1
    assert after["tables"][1] == before["tables"][1] + 1 and after["furnaces"][1] == before["furnaces"][1] + 1
    assert after["trees"][2] == before["trees"][2] - 1
    assert after["spawn_hostiles"][3] == 1
    assert after["plants"][2] == before["plants"][2] and after["tables"][3] == before["tables"][3]


# --------------------------------------------------------------------------- 5: statistics


def test_crafter_score_hand_computed():
    assert crafter_score(np.zeros(22)) == 0.0
    assert crafter_score(np.full(22, 100.0)) == pytest.approx(100.0)
    # exp(mean(ln(1 + s))) - 1 is the geometric mean of (1 + s), minus 1:
    assert crafter_score([0, 3]) == pytest.approx(1.0)  # sqrt(1 * 4) - 1
    assert crafter_score([3, 15]) == pytest.approx(7.0)  # sqrt(4 * 16) - 1
    assert crafter_score([8, 0, 0]) == pytest.approx(9 ** (1 / 3) - 1)  # 1.0801
    assert crafter_score([100] * 11 + [0] * 11) == pytest.approx(9.0498756)  # sqrt(101) - 1
    assert crafter_score(np.full(22, 3.0)) == pytest.approx(3.0)


def test_recent_lives_summary_hand_computed():
    lives = RecentLives(window=4, achievement_names=["a", "b", "c"])
    assert lives.summary() == {}
    lives.add(999, ["c"])  # pushed out of the window by the next four
    for lifespan, ach in [(10, ["a"]), (20, ["a", "b"]), (30, []), (100, ["a"])]:
        lives.add(lifespan, ach)
    assert len(lives) == 4
    s = lives.summary()
    assert s["lifespan_mean"] == pytest.approx(40.0)  # (10 + 20 + 30 + 100) / 4
    assert s["lifespan_median"] == pytest.approx(25.0)  # (20 + 30) / 2
    assert s["achievement_rates"] == pytest.approx({"a": 75.0, "b": 25.0, "c": 0.0})
    # rates across lives first, then the score: (76 * 26 * 1) ** (1/3) - 1 = 11.5486
    assert s["crafter_score"] == pytest.approx((76 * 26) ** (1 / 3) - 1)


@pytest.mark.parametrize("n_flags", [1, 33, 67])
def test_pack_unpack_bits_round_trip(n_flags):
    rng = np.random.default_rng(n_flags)
    flags = rng.random((3, 5, n_flags)) < 0.5
    flags[0, 0] = True
    flags[0, 1] = False
    words = np.asarray(pack_bits(jnp.asarray(flags)))
    assert words.dtype == np.uint32 and words.shape == (3, 5, -(-n_flags // 32))
    assert np.array_equal(unpack_bits(words, n_flags), flags)
    if n_flags >= 3:
        assert int(np.asarray(pack_bits(jnp.asarray([True, False, True] + [False] * (n_flags - 3))))[0]) == 5


# --------------------------------------------------------------------------- 6: config


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "yaml_text, overrides, key",
    [
        ("bogus: 1\n", [], "bogus"),
        ("world:\n  bogus: 1\n", [], "world.bogus"),
        ("worlds:\n  n_slots: 4\n", [], "worlds"),
        ("world:\n  n_slots: a\n", [], "world.n_slots"),
        ("world:\n  n_slots: 2.5\n", [], "world.n_slots"),
        ("world:\n  n_slots: true\n", [], "world.n_slots"),
        ("world:\n  n_slots: 0\n", [], "world.n_slots"),
        ("world:\n  max_age: -5\n", [], "world.max_age"),
        ("world:\n  env: Craftax-Pixels-v1\n", [], "world.env"),
        ("run:\n  chunk_steps: 0\n", [], "run.chunk_steps"),
        ("run:\n  progress: 1\n", [], "run.progress"),
        ("seed: x\n", [], "seed"),
        ("world: 3\n", [], "world"),
        ("", ["bogus=1"], "bogus"),
        ("", ["world.bogus=1"], "world.bogus"),
        ("", ["world.n_slots=a"], "world.n_slots"),
        ("", ["world.n_slots=1.5"], "world.n_slots"),
        ("", ["world.n_slots=0"], "world.n_slots"),
        ("", ["world.spawn_clear_radius=-1"], "world.spawn_clear_radius"),
        ("", ["agents.kind=nope"], "agents.kind"),
        ("", ["agents.inverse_input=decoder"], "agents.inverse_input"),
        ("", ["agents.place_input=2"], "agents.place_input"),
        ("", ["run.snapshot_every_s=0"], "run.snapshot_every_s"),
        ("", ["agents.instinct=false"], "agents.instinct_do"),  # the default lean, of an instinct turned off
        ("", ["agents.seek=true", "agents.reflex=0"], "agents.seek"),  # a taxis is a row of the reflex
        ("", ["agents.reflex_need=true", "agents.reflex=0"], "agents.reflex_need"),  # scales a reflex that is off
        ("", ["agents.control=drives"], "agents.control"),  # the control of drive evolution, and none evolve
        ("", ["agents.control=both"], "agents.control"),
        ("world:\n  n_slots: 4\n", ["world.n_slots=x"], "world.n_slots"),
    ],
)
def test_config_errors_name_the_key(tmp_path, yaml_text, overrides, key):
    with pytest.raises(ConfigError) as e:
        config.load(_write(tmp_path, yaml_text), overrides)
    assert f"'{key}" in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_config_values_and_overrides(tmp_path):
    cfg = config.load(_write(tmp_path, "world:\n  n_slots: 8\nrun:\n  snapshot_every_s: 2\n"),
                      ["world.max_age=50", "seed=3", "run.progress=false"])
    assert (cfg.world.n_slots, cfg.world.max_age, cfg.seed, cfg.run.progress) == (8, 50, 3, False)
    assert cfg.run.snapshot_every_s == 2.0 and isinstance(cfg.run.snapshot_every_s, float)
    # dump -> load is the identity
    assert config.from_dict(yaml.safe_load(config.dump_yaml(cfg))) == cfg
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="section.key=value"):
        config.load(None, ["world.n_slots"])


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def test_default_yaml_documents_every_field():
    text = (CONFIGS / "default.yaml").read_text()
    listed = set(_flatten(yaml.safe_load(text)))
    fields = set(config.field_docs())
    assert fields - listed == set(), "fields missing from configs/default.yaml"
    assert listed - fields == set(), "keys in configs/default.yaml that the Config does not have"
    assert all(doc.strip() for doc in config.field_docs().values()), "every Config field has a doc"
    for line in text.splitlines():
        body = line.split("#", 1)[0]
        if not body.strip() or body.rstrip().endswith(":"):
            continue  # comment line, blank line or section header
        assert "#" in line and line.split("#", 1)[1].strip(), f"configs/default.yaml: no comment on '{line}'"


# What each preset is for (README): a dropped line or a typo in a size fails here; a new preset needs an entry.
PRESET_SIZES = {
    "default.yaml": {"world.n_slots": 64, "run.chunk_steps": 250},
    "tiny.yaml": {"world.n_slots": 4, "agents.d_model": 16, "run.chunk_steps": 50},
    "gpu.yaml": {"world.n_slots": 4096, "genepool.encoder_genes": 16, "genepool.layer_genes": 256,
                 "genepool.head_genes": 16, "genepool.drive_genes": 32, "genepool.recent_dead": 512,
                 "run.chunk_steps": 500},
}


@pytest.mark.parametrize("preset", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_presets_load(preset):
    text = (CONFIGS / preset).read_text()
    listed = _flatten(yaml.safe_load(text))
    assert set(listed) <= set(config.field_docs()), f"{preset}: keys the Config does not have"
    for line in text.splitlines():  # every key documented where it is set
        body = line.split("#", 1)[0]
        if body.strip() and not body.rstrip().endswith(":"):
            assert "#" in line and line.split("#", 1)[1].strip(), f"{preset}: no comment on '{line}'"
    cfg = config.load(CONFIGS / preset)
    loaded = _flatten(config.to_dict(cfg))
    assert {k: loaded[k] for k in listed} == listed  # every value as written
    assert {k: loaded[k] for k in PRESET_SIZES[preset]} == PRESET_SIZES[preset]


@pytest.mark.background("gpu_preset")
def test_gpu_preset_runs_a_chunk_on_the_cpu(background):
    """configs/gpu.yaml, one chunk at 4 slots with its model and pool sizes (tests/jobs/gpu_preset.py)."""
    r = job_report(background("gpu_preset")[0])
    assert r["step"] == 100 and r["action_shape"] == [100, 4]
    assert r["capacities"] == [16, 256, 16, 32]
    assert r["updates"] == 1
    assert r["broken"] == 0  # learning stayed finite at the full model size
    assert r["matrix_dtypes"] == ["bfloat16"]  # the preset holds its inherited weights in bfloat16


# --------------------------------------------------------------------------- 7: resume / determinism

A, B = 175, UNINTERRUPTED_STEPS - 175  # neither a multiple of chunk_steps=50: masked chunk tails on both legs


@pytest.fixture(scope="module")
def runs(tiny_cfg, simulation, tmp_path_factory, uninterrupted):
    """Uninterrupted A+B steps (conftest.py); A steps + resume + B steps; A+B steps in chunks of 7 steps."""
    from evodevo.world import runner as runner_mod

    base = tmp_path_factory.mktemp("runs")
    out = {"full": uninterrupted}
    # checkpoints only where a run stops (saves time; the resumed leg restores its end-of-advance checkpoint)
    tiny_cfg = dataclasses.replace(tiny_cfg, run=dataclasses.replace(tiny_cfg.run, checkpoint_every=10**6))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner_mod, "Simulation", simulation)

        r = Runner.create(base / "resumed", tiny_cfg)
        assert r.advance(A)
        r.close()
        # a kill after lives were appended but before the next checkpoint: a whole line and a cut line
        with open(base / "resumed" / LIFETIMES, "a") as f:
            f.write(json.dumps({"agent_id": 999, "death_step": A + 1, "lifespan": 1}) + "\n")
            f.write('{"agent_id": 1000, "sl')
        r = Runner.load(base / "resumed")
        assert r.step == A
        assert r.advance(B)
        out["resumed"] = finished_run(r)

        # Chunk boundaries at other steps: the same compiled 50-step chunk, run 7, 29 and 43 steps at a time
        # (masked tails), so the host's work between chunks (lives, births, snapshots, the bar) comes at
        # other steps; a compiled chunk_steps=7 would cost a compile of its own (~35 s).
        r = Runner.create(base / "chunk7", tiny_cfg)
        r.checkpoint = lambda: None  # advance() checkpoints where it stops: not what is tested here
        sizes = itertools.cycle((7, 29, 43))
        while r.step < A + B:
            assert r.advance(min(next(sizes), A + B - r.step))
        out["chunk7"] = finished_run(r)
    return out


def _lives(text):
    return [json.loads(line) for line in text.splitlines()]


def test_uninterrupted_run_writes_sane_lives(runs, tiny_cfg):
    state, text = runs["full"]
    lives = _lives(text)
    n, max_age = tiny_cfg.world.n_slots, tiny_cfg.world.max_age
    assert int(state.step) == A + B
    # every slot's first agent is dead by max_age
    assert len(lives) >= n and {life["agent_id"] for life in lives} >= set(range(n))
    ids = [life["agent_id"] for life in lives]
    assert len(set(ids)) == len(ids)
    assert set(ids) | set(state.slots.agent_id.tolist()) == set(range(int(state.next_agent_id)))
    assert {life["cause"] for life in lives} <= ALLOWED_CAUSES
    for life in lives:
        assert life["lifespan"] == life["death_step"] - life["birth_step"] > 0
        assert life["lifespan"] <= max_age
        assert (life["cause"] == "old_age") == (life["lifespan"] == max_age)
        # parents (tournament winners among the living and the recently dead) were born before the child
        assert len(life["parents"]) <= 2 and all(0 <= p < life["agent_id"] for p in life["parents"])
    assert [life["death_step"] for life in lives] == sorted(life["death_step"] for life in lives)
    assert int(state.births) == len(lives) == int(np.asarray(state.deaths).sum())


def test_resume_equals_uninterrupted(runs):
    full_state, full_text = runs["full"]
    res_state, res_text = runs["resumed"]
    assert res_text == full_text
    assert_trees_equal(res_state, full_state)


def test_chunk_size_does_not_change_the_run(runs):
    full_state, full_text = runs["full"]
    c7_state, c7_text = runs["chunk7"]
    assert c7_text == full_text
    assert_trees_equal(c7_state, full_state)


# --------------------------------------------------------------------------- 8: stop signal (in process)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stop_signal_checkpoints_and_says_how_to_resume(signum, tiny_cfg, shared_simulations, tmp_path, capsys,
                                                         monkeypatch):
    """`evodevo run` (in process, through cli.main) gets a signal mid-run: checkpoint, message, exit 128+signum."""
    from evodevo.cli import main

    sim = shared_simulations(tiny_cfg)
    chunk = tiny_cfg.run.chunk_steps
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    calls = {"n": 0}
    real = sim.run_chunk

    def run_chunk_then_signal(state, n=None, hp=None):
        calls["n"] += 1
        if calls["n"] == 2:
            # sent only if the run installed its own handler (the default one would end pytest)
            assert signal.getsignal(signum) is not before[signum], "the run installs no stop handler"
            os.kill(os.getpid(), signum)
        return real(state, n, hp)

    monkeypatch.setattr(sim, "run_chunk", run_chunk_then_signal)
    d = tmp_path / "run"
    rc = main(["run", "--config", str(CONFIGS / "tiny.yaml"), "--run-dir", str(d), "--steps", str(10 * chunk),
               "--set", "run.snapshot=false"])
    assert rc == 128 + int(signum)
    assert {s: signal.getsignal(s) for s in before} == before, "the run's signal handlers are removed"
    out = capsys.readouterr().out
    assert signal.Signals(signum).name in out and f"evodevo resume {d}" in out
    assert f"at step {2 * chunk}" in out, "the chunk in flight completes, then the run stops"
    lives = _lives((d / LIFETIMES).read_text())
    assert all(life["death_step"] <= 2 * chunk for life in lives)
    resumed = Runner.load(d)
    assert resumed.step == 2 * chunk
    resumed.close()


@pytest.mark.parametrize("memory", [True, False], ids=["memory", "no_memory"])
def test_restored_state_has_the_signature_of_a_fresh_one(state, tmp_path, memory):
    """Same dtypes, weak types and committedness: otherwise the jitted chunk compiles again on resume. Without
    memory tokens (the default) the agents' memory is a zero-size array, which orbax refuses to save."""
    from evodevo.world.checkpoint import Checkpoints

    fresh = state if memory else state.replace(agents=state.agents.replace(mem=state.agents.mem[:, :0]))
    ck = Checkpoints(tmp_path / "ck", 1)
    ck.save(0, fresh, {})
    restored, _, step = ck.restore(fresh)
    ck.close()

    def sig(x):
        return x.dtype, x.shape, x.weak_type, x.committed

    assert step == 0
    assert [sig(x) for x in jax.tree.leaves(restored)] == [sig(x) for x in jax.tree.leaves(fresh)]
    assert_trees_equal(host(restored), host(fresh))
