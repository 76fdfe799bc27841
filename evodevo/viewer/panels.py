"""The frame's right-hand panels: the selected agent (stats, genome strip, sparklines) and the
population with its gene pool. Pure drawing on a pygame Surface (see render.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pygame

from evodevo.viewer.draw import (ACCENT, DIM, FG, MAX_STAT, OK, STATS, bar, gene_parents, lineage_colour, paragraph,
                                 sparkline, sparkline_stats, text)
from evodevo.viewer.snapshot import Snapshot
from evodevo.viewer.ui import UI, ages

if TYPE_CHECKING:
    from evodevo.viewer.render import Assets


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
    y += text(surf, big, f"Agent #{aid}", (x, y), ACCENT)
    par = ", ".join(f"#{p}" for p in parents) if parents else "none (first generation)"
    y += text(surf, small, f"slot {s} · parents {par}", (x, y), DIM, w) + 2
    max_age = int(snap.meta.get("max_age", 0)) or None
    life = f"age {age:,} steps (lifespan so far)"
    if max_age:
        life += f" · {100 * age / max_age:.0f}% of max age {max_age:,}"
    y += text(surf, mid, life, (x, y), FG, w)
    y += text(surf, small, f"born at step {int(snap.slots['birth_step'][s]):,}", (x, y), DIM, w) + 4
    # needs
    bw = (w - 12) // 4
    for j, (field, colour) in enumerate(STATS):
        v = float(env[f".{field}"][s])
        text(surf, small, f"{field[7:]} {v:.0f}", (x + j * (bw + 4), y), DIM)
        bar(surf, (x + j * (bw + 4), y + 15, bw, 6), v / MAX_STAT, colour)
    y += 28
    # genome
    y += text(surf, mid, "Genome", (x, y), FG)
    y = draw_genome(surf, assets, snap, s, (x, y, w)) + 6
    # learning metrics
    n_valid = _valid_history(snap, s)
    metrics = [m for m in snap.hist if m != "action"]
    first = ("intrinsic_reward", "gate_open", "loss_forward", "td_error")
    metrics.sort(key=lambda m: (first.index(m) if m in first else len(first), m))
    if not metrics:
        y += text(surf, mid, "Intrinsic reward", (x, y), FG)
        if snap.meta.get("agents_kind", "random") == "random":
            why = "random agents: no learning, no intrinsic reward"
        elif snap.meta.get("checkpoint") is not None:
            why = "checkpoints keep no metric history; view the live run"
        else:
            why = "none recorded yet"
        y += text(surf, small, why, (x, y), DIM, w) + 6
    for m in metrics[:3]:
        vals = snap.hist[m][-n_valid:, s] if n_valid else []
        title = m.replace("_", " ").capitalize()
        text(surf, mid, title, (x, y), FG)
        tw = mid.size(title)[0]
        text(surf, small, sparkline_stats(vals), (x + tw + 12, y + 3), DIM, w - tw - 12)
        sparkline(surf, (x, y + 20, w, 26), vals)
        y += 50
    # actions
    y += text(surf, mid, "Recent actions (newest last)", (x, y), FG)
    acts = snap.hist.get("action")
    if acts is None or n_valid == 0:
        names = "none recorded yet" if snap.meta.get("checkpoint") is None else "not kept in checkpoints"
    else:
        a = acts[-min(n_valid, 12):, s].astype(int)
        names = " ".join(assets.actions[i] if 0 <= i < len(assets.actions) else "?" for i in a)
    y = paragraph(surf, small, names, x, y, w, DIM, max_lines=2) + 4
    # achievements of this life
    got = [n for n, f in zip(assets.achievements, env[".achievements"][s]) if f]
    y += text(surf, mid, f"Achievements this life ({len(got)}/{len(assets.achievements)})", (x, y), FG)
    y = paragraph(surf, small, ", ".join(got) if got else "none yet", x, y, w, OK if got else DIM, max_lines=3)
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
                y += text(surf, small, f"{name}: {np.asarray(g[name][s]).tolist()}", (x, y), DIM, w)
            return y
        return y + text(surf, small, f"{snap.meta.get('agents_kind', 'random')} agents: no genome", (x, y), DIM, w)
    parents = gene_parents(snap.meta.get("pool") or {})
    ids = np.asarray(g["layer_id"][s]).astype(int)
    gates = np.asarray(g["gates"][s]) if "gates" in g else np.full(len(ids), 10.0)
    gates = gate_openness(gates).reshape(len(ids), -1)
    blocks = []  # (label, gene id, openness per part or None)
    if "encoder_id" in g:
        blocks.append(("E", int(np.asarray(g["encoder_id"][s]).reshape(-1)[0]), None))
    blocks += [("L", int(i), gates[j]) for j, i in enumerate(ids) if i >= 0]
    for key, label in (("head_id", "H"), ("drive_id", "D")):
        if key in g:
            blocks.append((label, int(np.asarray(g[key][s]).reshape(-1)[0]), None))
    bw = max(18, min(48, (w - 4 * len(blocks)) // max(len(blocks), 1)))
    h = 34
    for j, (kind, gid, open_) in enumerate(blocks):
        bx = x + j * (bw + 4)
        if bx + bw > x + w:
            text(surf, small, "…", (bx, y + 10), DIM)
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
        text(surf, small, f"{kind}{gid}", (bx + 1, y + h + 1), DIM, bw + 3)
    y += h + 16
    n_layers = sum(1 for b in blocks if b[0] == "L")
    mean_open = float(gates[ids >= 0].mean()) if n_layers else 0.0
    legend = f"{n_layers} layers · gates open {mean_open:.2f} (fill: attention | MLP) · colour: lineage"
    return y + text(surf, small, legend, (x, y), DIM, w)


def draw_pool_panel(surf, assets: Assets, snap: Snapshot, rect) -> int:
    x0, y, w, h = rect
    bottom = y + h
    x = x0 + 12
    w -= 24
    mid, small = assets.fonts(22), assets.fonts(19)
    meta = snap.meta
    rates = meta.get("rates") or {}
    n, k = int(meta.get("n_slots", snap.n_shown)), snap.n_shown
    y += text(surf, assets.fonts(28), "Population & gene pool", (x, y), ACCENT)
    pop = f"population {n:,} agents" + (f" (first {k} shown)" if k < n else "")
    y += text(surf, mid, pop, (x, y), FG, w)
    deaths = meta.get("deaths") or {}
    total_deaths = sum(deaths.values())

    def rate(name):
        return f" ({rates[name]:.2f}/s)" if name in rates else ""

    y += text(surf, small, f"births {int(meta.get('births', 0)):,}{rate('births_per_s')} · deaths "
               f"{total_deaths:,}{rate('deaths_per_s')}", (x, y), FG, w)
    causes = " · ".join(f"{c} {v:,}" for c, v in deaths.items() if v)
    if causes:
        y += text(surf, small, f"deaths by cause: {causes}", (x, y), DIM, w)
    recent = meta.get("recent") or {}
    if recent:
        y += text(surf, small, f"recent lives: lifespan mean {recent['lifespan_mean']:.0f}, median "
                   f"{recent['lifespan_median']:.0f} · Crafter score {recent['crafter_score']:.2f}", (x, y), DIM, w)
    if "agent_steps_per_s" in rates:
        y += text(surf, small, f"speed {rates['steps_per_s']:,.0f} steps/s · "
                   f"{rates['agent_steps_per_s']:,.0f} agent-steps/s", (x, y), DIM, w)
    y += 6
    pool = meta.get("pool") or {}
    kind = meta.get("agents_kind", "random")
    if not pool:
        y += text(surf, mid, "random agents: no genome, no gene pool" if kind == "random"
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
        y += text(surf, mid, " · ".join(facts), (x, y), FG, w)
    top = pool.get("top_genes") or []
    if top:
        y += text(surf, mid, "Top genes by fitness", (x, y + 2), FG) + 2
        cols = (("id", 0), ("parent", 60), ("role", 125), ("carriers", 205), ("fitness", 290))
        for name, dx in cols:
            text(surf, small, name, (x + 16 + dx, y), DIM)
        y += 16
        for gene in top[:6]:
            gid = gene.get("id", -1)
            pygame.draw.rect(surf, lineage_colour(int(gid), parents), (x, y + 2, 10, 10))
            for name, dx in cols:
                v = gene.get(name, "")
                s = f"{v:.3f}" if isinstance(v, float) else ("–" if v in (None, -1) and name == "parent" else str(v))
                text(surf, small, s, (x + 16 + dx, y), FG, 80)
            y += 16
    splits = pool.get("recent_splits") or []
    if splits:
        y += text(surf, mid, "Recent splits", (x, y + 4), FG) + 4
        for sp in splits[-4:][::-1]:
            if isinstance(sp, dict):
                s = " ".join(f"{k} {v}" for k, v in sp.items())
            else:
                s = str(sp)
            y += text(surf, small, s, (x, y), DIM, w)
    other = [k for k in pool if k not in ("living_genes", "entropy", "top_genes", "recent_splits", "lineage")]
    for key in other[:4]:
        v = pool[key]
        if isinstance(v, (int, float, str)):
            y += text(surf, small, f"{key.replace('_', ' ')}: {v:.3g}" if isinstance(v, float) else f"{key}: {v}",
                       (x, y), DIM, w)
    return y


def draw_achievement_rates(surf, assets: Assets, rates: dict, rect, n: int) -> int:
    """Bars of the `n` most often unlocked achievements over the recent lives (% of lives)."""
    x, y, w = rect
    if not rates:
        return y
    small = assets.fonts(19)
    y += text(surf, assets.fonts(22), "Achievements of recent lives (% of lives)", (x, y), FG, w) + 2
    top = sorted(rates.items(), key=lambda kv: -kv[1])[:n]
    for name, r in top:
        text(surf, small, name.replace("_", " "), (x, y), DIM, 170)
        bar(surf, (x + 175, y + 3, w - 230, 10), r / 100.0, OK)
        text(surf, small, f"{r:.0f}%", (x + w - 45, y), DIM)
        y += 17
    return y
