"""Drawing the viewer's frame: pure functions of (snapshot, UI state) -> image.

Nothing here owns a window or reads events (app.py does); a frame is drawn on an
off-screen pygame Surface, so the same code makes the live window and `--screenshot`.

* The worlds are drawn by Craftax's own pixel renderer (the agent's local view with mobs,
  inventory and day/night), jitted and vmapped once over the shown slots at 16 px per
  block, then scaled with pygame.
* The whole map of one world (key M) has no Craftax renderer: a numpy colour palette
  (the mean colour of each block texture) over `state.map`, with mobs and the player on top.
"""

from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass

import jax
import numpy as np
import pygame

from evodevo.viewer.snapshot import Snapshot, SnapshotError
from evodevo.viewer.ui import HELP, UI, ages, grid_shape

BLOCK_PX = 16  # Craftax pixel renderer block size (textures exist for 7, 16 and 64 / 10, 16 and 64)
SIZE = (1280, 800)  # default frame size
MIN_SIZE = (960, 600)
HEADER_H = 30
PANEL_W = 470  # right-hand panels

BG = (18, 18, 24)
PANEL_BG = (28, 28, 38)
FG = (230, 230, 235)
DIM = (150, 150, 165)
ACCENT = (255, 210, 60)
WARN = (255, 150, 60)
OK = (110, 220, 120)
STATS = (  # tile bars: (EnvState field, colour)
    ("player_health", (230, 60, 60)),
    ("player_food", (240, 150, 50)),
    ("player_drink", (70, 150, 240)),
    ("player_energy", (240, 220, 60)),
)
MAX_STAT = 9.0


# Whole-map colour of a mob by its role in the env's table (craftax_world.EnvSpec.mobs).
MOB_COLOURS = {"passive": (250, 250, 250), "melee": (235, 40, 40), "ranged": (190, 190, 200),
               "projectile": (255, 160, 0)}


# --------------------------------------------------------------------------- static assets


@functools.lru_cache(maxsize=None)
def _pixel_renderer(module: str, block_px: int):
    """Craftax's pixel renderer, vmapped over slots and jitted once per process."""
    import importlib

    make = importlib.import_module(module).make_craftax_pixel_renderer
    return jax.jit(jax.vmap(make(block_px)))


class Fonts:
    """pygame fonts (pygame's default font works without a display)."""

    def __init__(self):
        pygame.font.init()
        self._cache: dict[int, pygame.font.Font] = {}

    def __call__(self, size: int) -> pygame.font.Font:
        if size not in self._cache:
            self._cache[size] = pygame.font.Font(None, size)
        return self._cache[size]


class Assets:
    """What drawing needs that does not change during a run: the jitted Craftax renderer,
    the EnvState template, the palette, names, fonts. Memoises the last snapshot's tiles."""

    def __init__(self, env_name: str, fonts: Fonts | None = None, block_px: int = BLOCK_PX):
        import importlib

        from evodevo.config import WorldConfig
        from evodevo.world.craftax_world import ENVS, ContinuousWorld

        if env_name not in ENVS:
            raise SnapshotError(f"the viewer cannot draw env '{env_name}'")
        self.env_name = env_name
        self.fonts = fonts or Fonts()
        world = ContinuousWorld(WorldConfig(env=env_name, n_slots=1))
        self.spec = world.spec  # renderer and constants modules, mobs, levels
        template = jax.eval_shape(world.env.reset_env, jax.random.PRNGKey(0), world.params)[1]
        flat, self.treedef = jax.tree_util.tree_flatten_with_path(template)
        self.leaves = [(jax.tree_util.keystr(p), np.dtype(x.dtype), tuple(x.shape)) for p, x in flat]
        self.achievements = list(world.achievement_names)
        consts = importlib.import_module(self.spec.constants)
        self.actions = [a.name.lower() for a in consts.Action]
        textures = consts.load_all_textures()[block_px]
        blocks = np.asarray(textures["block_textures"], np.float32)[..., :3]
        self.palette = blocks.mean(axis=(1, 2)).clip(0, 255).astype(np.uint8)
        self._render = _pixel_renderer(self.spec.renderer, block_px)
        self._memo = (None, None)

    def env_state(self, snap: Snapshot):
        """The batched Craftax EnvState of the shown slots (numpy leaves, template dtypes)."""
        leaves = []
        for path, dtype, shape in self.leaves:
            x = snap.env.get(path)
            if x is None or tuple(x.shape[1:]) != shape:
                got = None if x is None else tuple(x.shape[1:])
                raise SnapshotError(f"snapshot field {path} is {got}, the {self.env_name} renderer needs {shape}")
            leaves.append(x.astype(dtype, copy=False))
        return jax.tree.unflatten(self.treedef, leaves)

    def tiles(self, snap: Snapshot) -> np.ndarray:
        """uint8 [K, h, w, 3]: Craftax's own rendering of every shown slot (memoised per snapshot)."""
        if self._memo[0] is not snap:
            px = np.asarray(self._render(self.env_state(snap)))
            self._memo = (snap, px.clip(0, 255).astype(np.uint8))
        return self._memo[1]


# --------------------------------------------------------------------------- pure images


def world_map(assets: Assets, snap: Snapshot, slot: int, cell: int = 8) -> np.ndarray:
    """uint8 [H*cell, W*cell, 3]: the whole map of one slot's world, mobs and the player on top."""
    env = snap.env
    level = int(env[".player_level"][slot]) if assets.spec.levels else None
    grid = env[".map"][slot]
    if level is not None:
        grid = grid[level]
    img = assets.palette[np.clip(grid.astype(np.int64), 0, len(assets.palette) - 1)]
    img = img.repeat(cell, axis=0).repeat(cell, axis=1)
    inset = max(1, cell // 4)

    def mark(r, c, colour, pad):
        img[r * cell + pad:(r + 1) * cell - pad, c * cell + pad:(c + 1) * cell - pad] = colour

    for name, role in assets.spec.mobs:
        colour = MOB_COLOURS[role]
        pos, mask = env.get(f".{name}.position"), env.get(f".{name}.mask")
        if pos is None or mask is None:
            continue
        pos, mask = pos[slot], mask[slot]
        if level is not None:
            pos, mask = pos[level], mask[level]
        for (r, c) in pos[mask.astype(bool)].reshape(-1, 2).astype(np.int64):
            if 0 <= r < grid.shape[0] and 0 <= c < grid.shape[1]:
                mark(r, c, colour, inset)
    r, c = env[".player_position"][slot].astype(np.int64)
    mark(r, c, (0, 0, 0), 0)
    mark(r, c, (255, 0, 255), max(1, cell // 8))
    return img


def _surface(rgb: np.ndarray) -> pygame.Surface:
    return pygame.surfarray.make_surface(np.ascontiguousarray(rgb.transpose(1, 0, 2)))


def lineage_colour(gene_id: int, parents: dict) -> tuple[int, int, int]:
    """A colour per gene: the hue is its lineage root's, the shade darkens with generations."""
    root, depth = int(gene_id), 0
    while parents.get(root, -1) >= 0 and depth < 64:
        root, depth = int(parents[root]), depth + 1
    hue = (root * 0.6180339887) % 1.0
    value = max(0.45, 0.95 - 0.1 * depth)
    r, g, b = colorsys.hsv_to_rgb(hue, 0.6, value)
    return int(r * 255), int(g * 255), int(b * 255)


def gene_parents(pool: dict) -> dict:
    """{gene id: parent id} from whatever the pool summary lists (top genes, splits, lineage)."""
    parents = {}
    lineage = pool.get("lineage")
    if isinstance(lineage, dict):
        for k, v in lineage.items():
            try:
                parents[int(k)] = int(v)
            except (TypeError, ValueError):
                pass
    for value in pool.values():
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and "id" in item and "parent" in item:
                    try:
                        parents[int(item["id"])] = int(item["parent"] if item["parent"] is not None else -1)
                    except (TypeError, ValueError):
                        pass
    return parents


# --------------------------------------------------------------------------- drawing helpers


def _fit(font, s: str, width: int) -> str:
    if font.size(s)[0] <= width:
        return s
    while s and font.size(s + "…")[0] > width:
        s = s[:-1]
    return s + "…"


def _text(surf, font, s, pos, colour=FG, width=None) -> int:
    """Draw one line; return its height."""
    if width is not None:
        s = _fit(font, s, width)
    img = font.render(s, True, colour)
    surf.blit(img, pos)
    return img.get_height()


def _wrap(font, s: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in s.split(" "):
        trial = f"{line} {word}" if line else word
        if font.size(trial)[0] <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def _paragraph(surf, font, s, x, y, width, colour=FG, max_lines=3) -> int:
    lines = _wrap(font, s, width)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _fit(font, lines[-1] + " …", width)
    for line in lines:
        y += _text(surf, font, line, (x, y), colour, width)
    return y


def _bar(surf, rect, frac, colour):
    pygame.draw.rect(surf, (50, 50, 60), rect)
    w = int(round(rect[2] * float(np.clip(frac, 0.0, 1.0))))
    if w > 0:
        pygame.draw.rect(surf, colour, (rect[0], rect[1], w, rect[3]))


def sparkline_stats(values) -> str:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return "no data yet"
    return f"last {v[-1]:.3g} · min {v.min():.3g} · max {v.max():.3g} · {len(v)} steps"


def _sparkline(surf, rect, values, colour=OK):
    x, y, w, h = rect
    pygame.draw.rect(surf, (40, 40, 52), rect)
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo if hi > lo else 1.0
    xs = x + np.linspace(0, w - 1, len(v))
    ys = y + h - 2 - (v - lo) / span * (h - 4)
    pygame.draw.lines(surf, colour, False, list(zip(xs.tolist(), ys.tolist())), 1)


# --------------------------------------------------------------------------- frame parts


def grid_layout(k: int, area: tuple[int, int, int, int], tile_hw: tuple[int, int], label_h: int):
    """Rects (x, y, w, h) of the cell of each of `k` tiles, and the image rect inside each."""
    ax, ay, aw, ah = area
    rows, cols = grid_shape(k)
    cw, ch = aw // cols, ah // rows
    th, tw = tile_hw
    scale = max(0.1, min((cw - 6) / tw, (ch - label_h - 6) / th))
    iw, ih = int(tw * scale), int(th * scale)
    cells, images = [], []
    for i in range(k):
        r, c = divmod(i, cols)
        x, y = ax + c * cw, ay + r * ch
        cells.append((x, y, cw, ch))
        images.append((x + (cw - iw) // 2, y + label_h + 3, iw, ih))
    return cells, images


def _label_h(k: int, area_h: int) -> int:
    rows, _ = grid_shape(k)
    return 16 if area_h // rows < 150 else 20


def draw_grid(surf, assets: Assets, snap: Snapshot, ui: UI, area):
    k = snap.n_shown
    tiles = assets.tiles(snap)
    label_h = _label_h(k, area[3])
    cells, images = grid_layout(k, area, tiles.shape[1:3], label_h)
    font = assets.fonts(label_h)
    age = ages(snap)
    ids = snap.slots["agent_id"]
    for i in range(k):
        x, y, w, h = images[i]
        cx, cy, cw, ch = cells[i]
        img = pygame.transform.scale(_surface(tiles[i]), (w, h))
        surf.blit(img, (x, y))
        # label: id and age on the left, four stat bars on the right
        bars_w = max(20, min(70, w // 3))
        _text(surf, font, f"#{ids[i]}  {age[i]:,}", (x, cy + 2), FG, w - bars_w - 4)
        bh = max(2, (label_h - 4) // 4)
        for j, (field, colour) in enumerate(STATS):
            v = float(snap.env[f".{field}"][i]) / MAX_STAT
            _bar(surf, (x + w - bars_w, cy + 2 + j * bh, bars_w, bh - 1), v, colour)
        if i == ui.selected:
            pygame.draw.rect(surf, ACCENT, (x - 3, cy, w + 6, h + label_h + 6), 3)


def draw_map(surf, assets: Assets, snap: Snapshot, ui: UI, area):
    ax, ay, aw, ah = area
    slot = ui.selected
    font = assets.fonts(20)
    title = (f"world of agent #{snap.slots['agent_id'][slot]} (slot {slot}) · "
             f"M: back to the grid · magenta: agent, red: hostile, white: cow")
    _text(surf, font, title, (ax + 8, ay + 4), FG, aw - 16)
    img = world_map(assets, snap, slot, cell=1)
    mh, mw = img.shape[:2]
    cell = max(1, min((aw - 16) // mw, (ah - 34) // mh))
    img = world_map(assets, snap, slot, cell=cell)
    x, y = ax + (aw - img.shape[1]) // 2, ay + 28
    surf.blit(_surface(img), (x, y))
    # the agent's local view (Craftax OBS_DIM: rows x cols around the player)
    tile_h, tile_w = assets.tiles(snap).shape[1:3]
    view_cols = tile_w // BLOCK_PX
    inv_rows = 2 if not assets.spec.levels else 4
    view_rows = tile_h // BLOCK_PX - inv_rows
    r, c = snap.env[".player_position"][slot].astype(int)
    rect = (x + (c - view_cols // 2) * cell, y + (r - view_rows // 2) * cell, view_cols * cell, view_rows * cell)
    pygame.draw.rect(surf, (255, 255, 255), rect, 2)


def draw_agent_panel(surf, assets: Assets, snap: Snapshot, ui: UI, rect) -> int:
    x0, y, w, _ = rect
    x = x0 + 12
    w -= 24
    big, mid, small = assets.fonts(28), assets.fonts(22), assets.fonts(19)
    s = ui.selected
    env = snap.env
    aid = int(snap.slots["agent_id"][s])
    age = int(ages(snap)[s])
    parents = [int(p) for p in snap.slots["parents"][s] if p >= 0]
    y += _text(surf, big, f"Agent #{aid}", (x, y), ACCENT)
    par = ", ".join(f"#{p}" for p in parents) if parents else "none (first generation)"
    y += _text(surf, small, f"slot {s} · parents {par}", (x, y), DIM, w) + 2
    max_age = int(snap.meta.get("max_age", 0)) or None
    life = f"age {age:,} steps (lifespan so far)"
    if max_age:
        life += f" · {100 * age / max_age:.0f}% of max age {max_age:,}"
    y += _text(surf, mid, life, (x, y), FG, w)
    y += _text(surf, small, f"born at step {int(snap.slots['birth_step'][s]):,}", (x, y), DIM, w) + 4
    # needs
    bw = (w - 12) // 4
    for j, (field, colour) in enumerate(STATS):
        v = float(env[f".{field}"][s])
        _text(surf, small, f"{field[7:]} {v:.0f}", (x + j * (bw + 4), y), DIM)
        _bar(surf, (x + j * (bw + 4), y + 15, bw, 6), v / MAX_STAT, colour)
    y += 28
    # genome
    y += _text(surf, mid, "Genome", (x, y), FG)
    y = draw_genome(surf, assets, snap, s, (x, y, w)) + 6
    # learning metrics
    n_valid = _valid_history(snap, s)
    metrics = [m for m in snap.hist if m != "action"]
    first = ("intrinsic_reward", "gate_open", "loss_forward", "td_error")
    metrics.sort(key=lambda m: (first.index(m) if m in first else len(first), m))
    if not metrics:
        y += _text(surf, mid, "Intrinsic reward", (x, y), FG)
        if snap.meta.get("agents_kind", "random") == "random":
            why = "random agents: no learning, no intrinsic reward"
        elif snap.meta.get("checkpoint") is not None:
            why = "checkpoints keep no metric history; view the live run"
        else:
            why = "none recorded yet"
        y += _text(surf, small, why, (x, y), DIM, w) + 6
    for m in metrics[:3]:
        vals = snap.hist[m][-n_valid:, s] if n_valid else []
        title = m.replace("_", " ").capitalize()
        _text(surf, mid, title, (x, y), FG)
        tw = mid.size(title)[0]
        _text(surf, small, sparkline_stats(vals), (x + tw + 12, y + 3), DIM, w - tw - 12)
        _sparkline(surf, (x, y + 20, w, 26), vals)
        y += 50
    # actions
    y += _text(surf, mid, "Recent actions (newest last)", (x, y), FG)
    acts = snap.hist.get("action")
    if acts is None or n_valid == 0:
        names = "none recorded yet" if snap.meta.get("checkpoint") is None else "not kept in checkpoints"
    else:
        a = acts[-min(n_valid, 12):, s].astype(int)
        names = " ".join(assets.actions[i] if 0 <= i < len(assets.actions) else "?" for i in a)
    y = _paragraph(surf, small, names, x, y, w, DIM, max_lines=2) + 4
    # achievements of this life
    got = [n for n, f in zip(assets.achievements, env[".achievements"][s]) if f]
    y += _text(surf, mid, f"Achievements this life ({len(got)}/{len(assets.achievements)})", (x, y), FG)
    y = _paragraph(surf, small, ", ".join(got) if got else "none yet", x, y, w, OK if got else DIM, max_lines=3)
    return y


def _valid_history(snap: Snapshot, s: int) -> int:
    """Rows of the per-slot history that belong to the slot's current agent."""
    h = int(snap.meta.get("hist_len", 0))
    if not snap.hist:
        return 0
    return int(max(0, min(h, int(ages(snap)[s]), len(next(iter(snap.hist.values()))))))


def gate_openness(gates) -> np.ndarray:
    """|tanh(alpha)| of gate alphas: [L] or [L, parts] (attention, MLP) -> same shape, in [0, 1]."""
    return np.abs(np.tanh(np.asarray(gates, np.float64)))


def draw_genome(surf, assets: Assets, snap: Snapshot, s: int, rect) -> int:
    """A strip of the agent's genes (encoder, layers, head) coloured by gene lineage; each
    layer is filled to its gates' openness |tanh(alpha)| (attention left, MLP right)."""
    x, y, w = rect
    small = assets.fonts(16)
    g = snap.genome
    if "layer_id" not in g:
        if g:
            for name in sorted(g)[:4]:
                y += _text(surf, small, f"{name}: {np.asarray(g[name][s]).tolist()}", (x, y), DIM, w)
            return y
        return y + _text(surf, small, f"{snap.meta.get('agents_kind', 'random')} agents: no genome", (x, y), DIM, w)
    parents = gene_parents(snap.meta.get("pool") or {})
    ids = np.asarray(g["layer_id"][s]).astype(int)
    gates = np.asarray(g["gates"][s]) if "gates" in g else np.full(len(ids), 10.0)
    gates = gate_openness(gates).reshape(len(ids), -1)
    blocks = []  # (label, gene id, openness per part or None)
    if "encoder_id" in g:
        blocks.append(("E", int(np.asarray(g["encoder_id"][s]).reshape(-1)[0]), None))
    blocks += [("L", int(i), gates[j]) for j, i in enumerate(ids) if i >= 0]
    if "head_id" in g:
        blocks.append(("H", int(np.asarray(g["head_id"][s]).reshape(-1)[0]), None))
    bw = max(18, min(48, (w - 4 * len(blocks)) // max(len(blocks), 1)))
    h = 34
    for j, (kind, gid, open_) in enumerate(blocks):
        bx = x + j * (bw + 4)
        if bx + bw > x + w:
            _text(surf, small, "…", (bx, y + 10), DIM)
            break
        colour = lineage_colour(gid, parents)
        if open_ is None:
            pygame.draw.rect(surf, colour, (bx, y, bw, h))
        else:
            pygame.draw.rect(surf, tuple(c // 3 for c in colour), (bx, y, bw, h))
            pw = bw // len(open_)
            for p, o in enumerate(open_):
                fill = int(round(h * float(o)))
                part_w = pw if p < len(open_) - 1 else bw - p * pw
                pygame.draw.rect(surf, colour, (bx + p * pw, y + h - fill, part_w, fill))
        pygame.draw.rect(surf, FG if kind != "L" else (90, 90, 100), (bx, y, bw, h), 1)
        _text(surf, small, f"{kind}{gid}", (bx + 1, y + h + 1), DIM, bw + 3)
    y += h + 16
    n_layers = sum(1 for b in blocks if b[0] == "L")
    mean_open = float(gates[ids >= 0].mean()) if n_layers else 0.0
    legend = f"{n_layers} layers · gates open {mean_open:.2f} (fill: attention | MLP) · colour: lineage"
    return y + _text(surf, small, legend, (x, y), DIM, w)


def draw_pool_panel(surf, assets: Assets, snap: Snapshot, rect) -> int:
    x0, y, w, h = rect
    bottom = y + h
    x = x0 + 12
    w -= 24
    mid, small = assets.fonts(22), assets.fonts(19)
    meta = snap.meta
    rates = meta.get("rates") or {}
    n, k = int(meta.get("n_slots", snap.n_shown)), snap.n_shown
    y += _text(surf, assets.fonts(28), "Population & gene pool", (x, y), ACCENT)
    pop = f"population {n:,} agents" + (f" (first {k} shown)" if k < n else "")
    y += _text(surf, mid, pop, (x, y), FG, w)
    deaths = meta.get("deaths") or {}
    total_deaths = sum(deaths.values())

    def rate(name):
        return f" ({rates[name]:.2f}/s)" if name in rates else ""

    y += _text(surf, small, f"births {int(meta.get('births', 0)):,}{rate('births_per_s')} · deaths "
               f"{total_deaths:,}{rate('deaths_per_s')}", (x, y), FG, w)
    causes = " · ".join(f"{c} {v:,}" for c, v in deaths.items() if v)
    if causes:
        y += _text(surf, small, f"deaths by cause: {causes}", (x, y), DIM, w)
    recent = meta.get("recent") or {}
    if recent:
        y += _text(surf, small, f"recent lives: lifespan mean {recent['lifespan_mean']:.0f}, median "
                   f"{recent['lifespan_median']:.0f} · Crafter score {recent['crafter_score']:.2f}", (x, y), DIM, w)
    if "agent_steps_per_s" in rates:
        y += _text(surf, small, f"speed {rates['steps_per_s']:,.0f} steps/s · "
                   f"{rates['agent_steps_per_s']:,.0f} agent-steps/s", (x, y), DIM, w)
    y += 6
    pool = meta.get("pool") or {}
    kind = meta.get("agents_kind", "random")
    if not pool:
        y += _text(surf, mid, "random agents: no genome, no gene pool" if kind == "random"
                   else f"no gene pool summary from the {kind} agents", (x, y), DIM, w) + 6
    else:
        y = _draw_pool(surf, assets, pool, (x, y, w))
    rows = (bottom - y - 30) // 17
    if rows >= 2:
        y = draw_achievement_rates(surf, assets, recent.get("achievement_rates") or {}, (x, y + 6, w), min(rows, 8))
    return y


def _draw_pool(surf, assets: Assets, pool: dict, rect) -> int:
    x, y, w = rect
    mid, small = assets.fonts(22), assets.fonts(19)
    parents = gene_parents(pool)
    facts = []
    for key, label in (("living_genes", "living genes"), ("entropy", "frequency entropy")):
        if key in pool:
            v = pool[key]
            facts.append(f"{label} {v:.3f}" if isinstance(v, float) else f"{label} {v}")
    if facts:
        y += _text(surf, mid, " · ".join(facts), (x, y), FG, w)
    top = pool.get("top_genes") or []
    if top:
        y += _text(surf, mid, "Top genes by fitness", (x, y + 2), FG) + 2
        cols = (("id", 0), ("parent", 60), ("role", 125), ("carriers", 205), ("fitness", 290))
        for name, dx in cols:
            _text(surf, small, name, (x + 16 + dx, y), DIM)
        y += 16
        for gene in top[:6]:
            gid = gene.get("id", -1)
            pygame.draw.rect(surf, lineage_colour(int(gid), parents), (x, y + 2, 10, 10))
            for name, dx in cols:
                v = gene.get(name, "")
                s = f"{v:.3f}" if isinstance(v, float) else ("–" if v in (None, -1) and name == "parent" else str(v))
                _text(surf, small, s, (x + 16 + dx, y), FG, 80)
            y += 16
    splits = pool.get("recent_splits") or []
    if splits:
        y += _text(surf, mid, "Recent splits", (x, y + 4), FG) + 4
        for sp in splits[-4:][::-1]:
            if isinstance(sp, dict):
                s = " ".join(f"{k} {v}" for k, v in sp.items())
            else:
                s = str(sp)
            y += _text(surf, small, s, (x, y), DIM, w)
    other = [k for k in pool if k not in ("living_genes", "entropy", "top_genes", "recent_splits", "lineage")]
    for key in other[:4]:
        v = pool[key]
        if isinstance(v, (int, float, str)):
            y += _text(surf, small, f"{key.replace('_', ' ')}: {v:.3g}" if isinstance(v, float) else f"{key}: {v}",
                       (x, y), DIM, w)
    return y


def draw_achievement_rates(surf, assets: Assets, rates: dict, rect, n: int) -> int:
    """Bars of the `n` most often unlocked achievements over the recent lives (% of lives)."""
    x, y, w = rect
    if not rates:
        return y
    small = assets.fonts(19)
    y += _text(surf, assets.fonts(22), "Achievements of recent lives (% of lives)", (x, y), FG, w) + 2
    top = sorted(rates.items(), key=lambda kv: -kv[1])[:n]
    for name, r in top:
        _text(surf, small, name.replace("_", " "), (x, y), DIM, 170)
        _bar(surf, (x + 175, y + 3, w - 230, 10), r / 100.0, OK)
        _text(surf, small, f"{r:.0f}%", (x + w - 45, y), DIM)
        y += 17
    return y


@dataclass(frozen=True)
class Status:
    """What the header says about where the frame comes from (not part of the snapshot)."""

    run_name: str
    now: float  # wall-clock time the frame is drawn
    note: str = ""  # e.g. "run restarted", "screenshot saved"


def draw_header(surf, assets_fonts: Fonts, snap: Snapshot | None, ui: UI, status: Status):
    w = surf.get_width()
    pygame.draw.rect(surf, (10, 10, 14), (0, 0, w, HEADER_H))
    font = assets_fonts(22)
    title = font.render(f"Evo Devo Nano · {status.run_name}", True, FG)
    surf.blit(title, (10, 6))
    x = 10 + title.get_width()
    parts = []
    if snap is not None:
        parts.append((f"step {snap.step:,}", FG))
        if snap.meta.get("checkpoint") is not None:
            parts.append((f"checkpoint {snap.meta['checkpoint']:,}", ACCENT))
        else:
            age = max(0.0, status.now - float(snap.meta.get("time", status.now)))
            stale = age > max(10.0, 5 * float(snap.meta.get("every_s", 1.0)))
            parts.append((f"live · {age:.0f} s ago" + (" · no update: run stopped?" if stale else ""),
                          WARN if stale else OK))
    if ui.paused:
        parts.append(("PAUSED", WARN))
    if ui.follow:
        parts.append(("FOLLOW fittest", OK))
    note = ui.message or status.note
    if note:
        parts.append((note, ACCENT))
    x += 20
    for s, colour in parts:
        img = font.render(s, True, colour)
        if x + img.get_width() > w - 80:
            break
        surf.blit(img, (x, 6))
        x += img.get_width() + 22
    _text(surf, font, "H: help", (w - 72, 6), DIM)


def draw_help(surf, fonts: Fonts):
    w, h = surf.get_size()
    bw, bh = 620, 60 + 28 * len(HELP)
    box = pygame.Surface((bw, bh), pygame.SRCALPHA)
    box.fill((0, 0, 0, 215))
    surf.blit(box, ((w - bw) // 2, (h - bh) // 2))
    x, y = (w - bw) // 2 + 24, (h - bh) // 2 + 16
    _text(surf, fonts(26), "Keys", (x, y), ACCENT)
    y += 34
    for key, what in HELP:
        _text(surf, fonts(22), key, (x, y), FG)
        _text(surf, fonts(22), what, (x + 150, y), DIM, bw - 180)
        y += 28


# --------------------------------------------------------------------------- the frame


def layout(size) -> dict:
    w, h = max(size[0], MIN_SIZE[0]), max(size[1], MIN_SIZE[1])
    return {
        "size": (w, h),
        "grid": (0, HEADER_H, w - PANEL_W, h - HEADER_H),
        "panel": (w - PANEL_W, HEADER_H, PANEL_W, h - HEADER_H),
    }


def draw_frame(assets: Assets, snap: Snapshot, ui: UI, status: Status, size=SIZE) -> pygame.Surface:
    """The whole frame for (snapshot, UI state): grid or map, agent panel, pool panel, header."""
    lay = layout(size)
    surf = pygame.Surface(lay["size"])
    surf.fill(BG)
    if ui.show_map:
        draw_map(surf, assets, snap, ui, lay["grid"])
    else:
        draw_grid(surf, assets, snap, ui, lay["grid"])
    px, py, pw, ph = lay["panel"]
    pygame.draw.rect(surf, PANEL_BG, lay["panel"])
    y = draw_agent_panel(surf, assets, snap, ui, (px, py + 8, pw, ph))
    pygame.draw.line(surf, (60, 60, 75), (px + 8, y + 8), (px + pw - 8, y + 8))
    draw_pool_panel(surf, assets, snap, (px, y + 16, pw, py + ph - y - 16))
    draw_header(surf, assets.fonts, snap, ui, status)
    if ui.help:
        draw_help(surf, assets.fonts)
    return surf


def draw_waiting(fonts: Fonts, lines: list[str], ui: UI, status: Status, size=SIZE) -> pygame.Surface:
    """A frame for when there is nothing to show yet."""
    lay = layout(size)
    surf = pygame.Surface(lay["size"])
    surf.fill(BG)
    draw_header(surf, fonts, None, ui, status)
    y = lay["size"][1] // 2 - 20 * len(lines)
    for i, line in enumerate(lines):
        font = fonts(30 if i == 0 else 22)
        img = font.render(line, True, FG if i == 0 else DIM)
        surf.blit(img, ((lay["size"][0] - img.get_width()) // 2, y))
        y += img.get_height() + 10
    if ui.help:
        draw_help(surf, fonts)
    return surf


def tile_at(assets: Assets, snap: Snapshot, size, pos) -> int | None:
    """The shown slot whose grid tile is under the window position `pos`, if any."""
    area = layout(size)["grid"]
    k = snap.n_shown
    cells, _ = grid_layout(k, area, assets.tiles(snap).shape[1:3], _label_h(k, area[3]))
    for i, (x, y, w, h) in enumerate(cells):
        if x <= pos[0] < x + w and y <= pos[1] < y + h:
            return i
    return None


def frame_array(surf: pygame.Surface) -> np.ndarray:
    """uint8 [H, W, 3] copy of a frame (tests, screenshots)."""
    return pygame.surfarray.array3d(surf).transpose(1, 0, 2).copy()

