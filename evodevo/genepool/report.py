"""Gene-pool statistics for people: TensorBoard scalars, histograms, a top-genes table,
a lineage-tree picture, and the summary the viewer shows.

`pool_view` runs on the device and returns fresh arrays (never views of the run's state,
which the next chunk donates); everything else is host-side numpy.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from evodevo.genepool import pool as gp
from evodevo.genepool.genome import Genome

GENE_FIELDS = ("alive", "gene_id", "parent_id", "birth_step", "lineage_depth", "count", "fit_mean", "sigma", "freq")


@jax.jit
def pool_view(pool: gp.GenePool, genomes: Genome, carriers: dict, gates, shrink_k) -> dict:
    """Everything the reports need, as fresh device arrays (no gene weights): the pool's banks,
    the living genomes' shapes and gate openness (`gates` [N, L, 2] alphas), the ancestry."""
    out = {"banks": {}}
    for kind in gp.KINDS:
        b = pool.bank(kind)
        fields = {f: getattr(b, f) + jnp.zeros((), getattr(b, f).dtype) for f in GENE_FIELDS}  # copies
        fields.update(
            fitness=gp.shrunk_fitness(b, pool.fit_mean, shrink_k), stderr=gp.fitness_stderr(b),
            role=gp.roles(b), depth=gp.mean_depth(b), carriers=carriers[kind], entropy=gp.entropy(b.freq),
        )
        out["banks"][kind] = fields
    out["agents"] = {"length": genomes.length, "active": genomes.active, "developmental": genomes.developmental,
                     "gate_open": jnp.abs(jnp.tanh(gates))}
    out["pool"] = {"splits": pool.splits + 0, "discards": pool.discards + 0, "updates": pool.updates + 0,
                   "life_mean": pool.life_mean + 0, "fit_mean": pool.fit_mean + 0}
    out["history"] = {f.name: getattr(pool.history, f.name) + 0 for f in dataclasses.fields(pool.history)}
    return out


def top_genes(view: dict, k: int = 10, step: int | None = None) -> list[dict]:
    """The k fittest living genes over all kinds (shrunk fitness), with lineage and usage."""
    rows = []
    for kind, b in view["banks"].items():
        for i in np.flatnonzero(b["alive"]):
            rows.append({
                "id": int(b["gene_id"][i]), "parent": int(b["parent_id"][i]), "kind": kind,
                "role": gp.ROLES[int(b["role"][i])] if kind == "layer" else kind,
                "carriers": int(b["carriers"][i]), "lives": int(b["count"][i]),
                "fitness": round(float(b["fitness"][i]), 4),
                "stderr": round(float(b["stderr"][i]), 4) if np.isfinite(b["stderr"][i]) else None,
                "age": None if step is None else int(step - b["birth_step"][i]),
            })
    rows.sort(key=lambda r: -r["fitness"])
    return rows[:k]


def recent_splits(view: dict, k: int = 6) -> list[dict]:
    h = view["history"]
    split = np.flatnonzero((h["gene_id"] >= 0) & (h["parent_id"] >= 0))
    split = split[np.argsort(-h["gene_id"][split])][:k]
    return [{"id": int(h["gene_id"][i]), "parent": int(h["parent_id"][i]), "kind": gp.KINDS[int(h["kind"][i])],
             "step": int(h["birth_step"][i])} for i in split[::-1]]


def summary(view: dict, step: int) -> dict:
    """The viewer's pool panel: living genes, layer-frequency entropy, top genes, recent splits, lineage."""
    banks = view["banks"]
    lineage = {}
    for b in banks.values():
        alive = b["alive"]
        lineage.update(zip(b["gene_id"][alive].tolist(), b["parent_id"][alive].tolist()))
    return {
        "living_genes": int(sum(int(b["alive"].sum()) for b in banks.values())),
        "entropy": float(banks["layer"]["entropy"]),
        "top_genes": top_genes(view, 6, step),
        "recent_splits": recent_splits(view),
        "lineage": {str(k): v for k, v in lineage.items()},
        "splits": int(np.asarray(view["pool"]["splits"]).sum()),
        "discards": int(np.asarray(view["pool"]["discards"]).sum()),
    }


def top_genes_markdown(view: dict, step: int) -> str:
    lines = ["| id | parent | kind | role | carriers | lives | fitness ± s.e. | age (steps) |",
             "|---:|---:|---|---|---:|---:|---|---:|"]
    for r in top_genes(view, 10, step):
        se = "–" if r["stderr"] is None else f"{r['stderr']:.3f}"
        parent = "–" if r["parent"] < 0 else r["parent"]
        lines.append(f"| {r['id']} | {parent} | {r['kind']} | {r['role']} | {r['carriers']} | {r['lives']} "
                     f"| {r['fitness']:.3f} ± {se} | {r['age']} |")
    return "\n".join(lines)


def write_tensorboard(tb, view: dict, step: int, previous: dict | None) -> dict:
    """Scalars and histograms of the pool and the genomes. `previous` is what the last call
    returned (for per-interval split and discard counts); returns the new cumulative counts."""
    counts = {"splits": np.asarray(view["pool"]["splits"]), "discards": np.asarray(view["pool"]["discards"])}
    for i, (kind, b) in enumerate(view["banks"].items()):
        alive = b["alive"].astype(bool)
        tb.add_scalar(f"pool/{kind}/living", int(alive.sum()), step)
        tb.add_scalar(f"pool/{kind}/entropy", float(b["entropy"]), step)
        n = int(alive.sum())
        tb.add_scalar(f"pool/{kind}/entropy_share", float(b["entropy"]) / math.log(n) if n > 1 else 0.0, step)
        for name, c in counts.items():
            tb.add_scalar(f"pool/{kind}/{name}_total", int(c[i]), step)
            before = 0 if previous is None else int(previous[name][i])
            tb.add_scalar(f"pool/{kind}/{name}", int(c[i]) - before, step)
        tb.add_scalar(f"pool/{kind}/lineage_depth_mean", float(b["lineage_depth"][alive].mean()), step)
        tb.add_scalar(f"pool/{kind}/lineage_depth_max", int(b["lineage_depth"][alive].max()), step)
        tb.add_histogram(f"pool/{kind}/fitness", b["fitness"][alive], step)
        tb.add_histogram(f"pool/{kind}/usage", b["carriers"][alive], step)
        if kind == "layer":
            for r, role in enumerate(gp.ROLES):
                tb.add_scalar(f"pool/layer/role_{role}", int((alive & (b["role"] == r)).sum()), step)
    a = view["agents"]
    tb.add_histogram("genomes/length", a["length"], step)
    active, dev = a["active"].astype(bool), a["developmental"].astype(bool)
    for name, mask in (("inherited", active & ~dev), ("developmental", active & dev)):
        gates = a["gate_open"][mask]
        if gates.size:
            tb.add_histogram(f"genomes/gates_{name}", gates, step)
    tb.add_scalar("genomes/developmental_layers", int(dev.sum()), step)
    tb.add_scalar("pool/life_mean", float(view["pool"]["life_mean"]), step)
    return counts


# --------------------------------------------------------------------------- lineage tree

KIND_COLOURS = {"encoder": (230, 160, 60), "layer": (90, 170, 240), "head": (140, 210, 110), "drive": (220, 110, 200)}


def lineage_rows(history: dict) -> list[int]:
    """Indices of the ancestry table in drawing order: every tree depth first, children after
    their parent (oldest first), founders in id order."""
    ids = history["gene_id"]
    used = np.flatnonzero(ids >= 0)
    index = {int(ids[i]): int(i) for i in used}
    children: dict[int, list[int]] = {}
    roots = []
    for i in sorted(used, key=lambda i: int(ids[i])):
        parent = int(history["parent_id"][i])
        (children.setdefault(parent, []) if parent in index else roots).append(int(ids[i]))
    order, stack = [], list(reversed(roots))
    while stack:
        gid = stack.pop()
        order.append(index[gid])
        stack.extend(reversed(children.get(gid, [])))
    return order


def lineage_image(history: dict, step: int, width: int = 1000, max_rows: int = 300) -> np.ndarray:
    """[H, W, 3] uint8: the pool's lineage tree. One row per gene ever made (time left to right):
    a bar from its birth to its discard (full colour while alive, pale once discarded), a
    connector from its parent's row at its birth. Drawn with matplotlib's Agg canvas (no window,
    no pyplot state, no pygame)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    order = lineage_rows(history)
    rows = order[:max_rows]
    n = len(rows)
    row_h = max(3, min(14, 900 // max(n, 1)))  # pixels per gene
    dpi = 100
    top, bottom, left, right = 58, 44, 64, 16  # pixels around the plot
    height = top + bottom + row_h * max(n, 1)
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor="white")
    ax = fig.add_axes((left / width, bottom / height, 1 - (left + right) / width, 1 - (top + bottom) / height))
    span = max(int(step), 1)
    ids = history["gene_id"][rows].astype(int)
    parents = history["parent_id"][rows].astype(int)
    kinds = [gp.KINDS[int(k)] for k in history["kind"][rows]]
    born = np.clip(history["birth_step"][rows].astype(float), 0, span)
    end = history["end_step"][rows].astype(float)
    alive = end < 0
    end = np.clip(np.where(alive, span, end), 0, span)
    colour = np.array([KIND_COLOURS[k] for k in kinds], float).reshape(-1, 3) / 255
    colour = np.where(alive[:, None], colour, 1 - 0.35 * (1 - colour))  # discarded: pale
    y = np.arange(n)
    row_of = {int(g): r for r, g in enumerate(ids)}
    links = [(born[r], row_of[int(p)], r) for r, p in enumerate(parents) if int(p) in row_of]
    if links:
        x, y0, y1 = np.array(links).T
        ax.vlines(x, y0, y1, colors="#8a8a96", linewidth=0.8, zorder=1)
    ax.barh(y, np.maximum(end - born, span / 500), left=born, height=0.72, color=colour, zorder=2)
    ax.set_xlim(0, span)
    ax.set_ylim(max(n, 1) - 0.5, -0.5)  # the first gene at the top
    ax.set_xlabel("simulation step", fontsize=9)
    ax.tick_params(labelsize=8)
    if row_h >= 9:
        ax.set_yticks(y, [f"{k[0].upper()}{g}" for k, g in zip(kinds, ids)], fontsize=min(8, row_h * 0.6))
    else:
        ax.set_yticks([])
        ax.set_ylabel("genes (parents above their children)", fontsize=9)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    shown = f"{n} genes" if n == len(order) else f"the first {n} of {len(order)} genes"
    fig.text(left / width, 1 - 10 / height, f"Gene lineage at step {step:,}: {shown}, {int(alive.sum())} alive",
             fontsize=11, va="top", weight="bold")
    handles = [Patch(color=np.array(c) / 255, label=f"{k[0].upper()} {k}") for k, c in KIND_COLOURS.items()]
    handles.append(Patch(color=(0.8, 0.8, 0.8), label="pale: discarded"))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(left / width, 1 - 30 / height), ncol=4,
               frameon=False, fontsize=8, handlelength=1.2, borderaxespad=0)
    if n == 0:
        ax.text(0.5, 0.5, "no genes yet", transform=ax.transAxes, ha="center", va="center")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
