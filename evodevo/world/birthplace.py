"""Where a newborn is born (`ContinuousWorld.respawn`), and what is cleared around it.

A world's birthplace is `ws.newborn["player_position"]`: its first player's spawn point, or, with
`world.nest=drink`, the place where its player last drank (`move_nest`, every step), so that what one
life found the next is born beside and a lineage's home grows around water. The newborn stands on the
free walkable tile nearest the birthplace, and hostile mobs and projectiles near it are removed:
otherwise the mob that killed the parent kills the child within ~14 steps (NOTES-craftax.md).
"""

from __future__ import annotations

import jax.numpy as jnp


def move_nest(world, ws, env) -> dict:
    """The worlds' newborn fields after a step from `ws` to `env`: with world.nest=drink a birthplace moves to
    where its player stands when it drinks (drink rose: Craftax raises it only by drinking), on the ground level."""
    if world.cfg.nest == "spawn":
        return ws.newborn
    drank = env.player_drink > ws.env.player_drink
    if world.spec.levels:
        drank = drank & (env.player_level == 0)
    nest = jnp.where(drank[:, None], env.player_position, ws.newborn["player_position"])
    return dict(ws.newborn, player_position=nest.astype(ws.newborn["player_position"].dtype))


def _ground(world, env):
    return (env.map[0], env.mob_map[0]) if world.spec.levels else (env.map, env.mob_map)


def spawn_position(world, env, origin):
    """Nearest free walkable tile to `origin`, the world's birthplace (one world's EnvState)."""
    ground, mobs = _ground(world, env)
    free = jnp.isin(ground, jnp.asarray(world.spec.spawn_blocks)) & ~mobs
    h, w = ground.shape
    ii, jj = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
    dist = jnp.abs(ii - origin[0]) + jnp.abs(jj - origin[1])
    flat = jnp.argmin(jnp.where(free, dist, h + w + 1))
    return jnp.stack([flat // w, flat % w]).astype(origin.dtype)


def clear_hostiles(world, env, pos):
    """One world's EnvState without the hostile mobs and projectiles within world.spawn_clear_radius of `pos`."""
    r = world.cfg.spawn_clear_radius
    mob_map = env.mob_map
    updates = {}
    for name in world.spec.hostile_in_mob_map + world.spec.projectiles:
        mobs = getattr(env, name)
        near = (jnp.abs(mobs.position - pos).max(axis=-1) <= r) & mobs.mask
        if world.spec.levels:  # only the ground level, where newborns spawn
            near = near & (jnp.arange(near.shape[0])[:, None] == 0)
        if name in world.spec.hostile_in_mob_map:
            # Free the cells of removed mobs; other entries are routed out of bounds and dropped.
            rows = jnp.where(near, mobs.position[..., 0], mob_map.shape[-2])
            cols = mobs.position[..., 1]
            if world.spec.levels:
                lvl = jnp.broadcast_to(jnp.arange(near.shape[0])[:, None], near.shape)
                mob_map = mob_map.at[lvl, rows, cols].set(False, mode="drop")
            else:
                mob_map = mob_map.at[rows, cols].set(False, mode="drop")
        # Zero their health too: Craftax-Classic's DO action recomputes every mob's mask as health > 0,
        # which would revive removed mobs next to the newborn.
        updates[name] = mobs.replace(mask=mobs.mask & ~near, health=jnp.where(near, 0, mobs.health))
    return env.replace(mob_map=mob_map, **updates)
