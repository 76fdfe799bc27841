"""`evodevo report RUN_DIR`: one picture and one table that say whether a run's population is
learning to live: lifespan, causes of death and Crafter score of its lives over the run, and the
drive weights, gene-pool entropy and world history (niche construction) it logged to TensorBoard.

Lives are binned by the step of their death. A life that ends at step t lived at most t steps, so
the first bins are short by construction; the lifespan panel draws that bound. The report reads
lifetimes.jsonl and tb/ and writes nothing into the run but the picture (atomically).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evodevo import config
from evodevo.agents.kind import in_control
from evodevo.metrics import crafter_score
from evodevo.world.craftax_world import achievement_names
from evodevo.world.runfiles import CONFIG, LIFETIMES, REPORT, TB, LifetimeLog, RunDirError, write_png, writing

CAUSE_COLOURS = {
    "zombie": "#c0392b", "arrow": "#e67e22", "starvation": "#8d6e3f", "thirst": "#2e86de",
    "exhaustion": "#8e44ad", "lava": "#f1c40f", "old_age": "#95a5a6", "broken": "#2d3436",
    "won": "#27ae60", "health": "#e84393",
}
SCALAR_PREFIXES = ("drives/", "pool/", "world/")  # the TensorBoard scalars the picture draws


@dataclass
class Lives:
    """Finished lives as arrays, in order of death."""

    death: np.ndarray  # [n] simulation step of death
    lifespan: np.ndarray  # [n] steps lived
    cause: np.ndarray  # [n] cause of death (its name)
    asleep: np.ndarray  # [n] 1.0 died asleep, 0.0 awake, nan not recorded (older runs)
    achieved: np.ndarray  # [n, A] bool: achievement a unlocked in this life

    def __len__(self) -> int:
        return len(self.death)

    def where(self, mask: np.ndarray) -> "Lives":
        return Lives(self.death[mask], self.lifespan[mask], self.cause[mask], self.asleep[mask], self.achieved[mask])


# per kind of in-run control (agents.control): the others, the control, and what the control's lives are
CONTROL_GROUPS = {"learning": ("learners", "control", "lives learning nothing"),
                  "drives": ("evolved drives", "hand-set drives", "hand-set drives"),
                  "memory": ("with memory", "without memory", "lives carrying no memory")}


@dataclass
class Run:
    path: Path
    env: str
    names: tuple[str, ...]  # the env's achievement names (the Crafter score runs over all of them)
    lives: Lives
    scalars: dict  # TensorBoard tag -> (steps, values) for the tags under SCALAR_PREFIXES
    tb_note: str  # why there are no scalars, or ""
    control: np.ndarray  # [n] bool: the life was in the in-run control (agents.control_share)
    lacks: str = "learning"  # what the control lacks (agents.control): learning, its own drives, or memory

    @property
    def groups(self) -> tuple[str, str]:
        """The names of the two groups of an in-run control: (the others, the control)."""
        return CONTROL_GROUPS[self.lacks][:2]

    @property
    def end(self) -> int:
        """The last step the run's files speak of."""
        last = [int(self.lives.death.max())] + [int(s[-1]) for s, _ in self.scalars.values() if len(s)]
        return max(max(last), 1)


# --------------------------------------------------------------------------- reading


def load(run_dir) -> Run:
    """A run directory's lives and scalars; RunDirError (what to do) when there is nothing to show."""
    path = Path(run_dir)
    if not (path / CONFIG).is_file():
        raise RunDirError(f"'{run_dir}' is not a run directory (no {CONFIG}); pass the --run-dir of an `evodevo run`")
    data = config.read_yaml(path / CONFIG)
    world = data.get("world") if isinstance(data, dict) else None
    env = (world or {}).get("env", config.ENVS[0])
    if env not in config.ENVS:
        raise RunDirError(f"'{path / CONFIG}' names an unknown world.env {env!r}; expected one of {config.ENVS}")
    records = LifetimeLog(path / LIFETIMES).read()
    if not records:
        raise RunDirError(f"'{run_dir}' has no finished lives yet (no lines in {LIFETIMES}); "
                          f"let the run go on, then report again")
    names = achievement_names(env)
    try:
        lives = _lives(records, names)
    except (KeyError, TypeError, ValueError) as e:
        raise RunDirError(f"'{path / LIFETIMES}' holds a life without a valid {e}; "
                          f"it was not written by `evodevo run`") from None
    scalars, note = read_scalars(path / TB)
    agents = (data.get("agents") if isinstance(data, dict) else None) or {}
    control = in_control(np.array([int(life.get("agent_id", 0)) for life in records]),
                         float(agents.get("control_share", 0.0)))
    return Run(path, env, names, lives, scalars, note, control, str(agents.get("control", "learning")))


def _lives(records: list[dict], names) -> Lives:
    index = {name: i for i, name in enumerate(names)}
    achieved = np.zeros((len(records), len(names)), bool)
    for row, life in enumerate(records):
        cols = [index[a] for a in life.get("achievements", ()) if a in index]
        achieved[row, cols] = True
    asleep = [float(life["asleep"]) if "asleep" in life else np.nan for life in records]
    return Lives(death=np.array([int(life["death_step"]) for life in records]),
                 lifespan=np.array([int(life["lifespan"]) for life in records]),
                 cause=np.array([str(life.get("cause", "unknown")) for life in records]),
                 asleep=np.array(asleep, float), achieved=achieved)


def read_scalars(tb_dir: Path) -> tuple[dict, str]:
    """The drive and pool scalars of every event file in tb/ (a resume's purge honoured), and a
    note when there are none."""
    if not tb_dir.is_dir() or not any(tb_dir.glob("events.out.tfevents.*")):
        return {}, f"no TensorBoard events in {TB}/"
    import logging

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # A resumed run's events file purges the steps past its checkpoint, as intended: not a warning for the user.
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    try:  # the events are a bonus: a damaged file must not cost the lives' panels
        acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0, "images": 1, "histograms": 1,
                                                           "tensors": 1, "audio": 1, "compressedHistograms": 1})
        acc.Reload()
        tags = [t for t in acc.Tags().get("scalars", []) if t.startswith(SCALAR_PREFIXES)]
        out = {}
        for tag in tags:
            events = acc.Scalars(tag)
            out[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events], float))
    except Exception as e:  # noqa: BLE001
        return {}, f"could not read {TB}/: {type(e).__name__}: {e}"
    return out, ""


# --------------------------------------------------------------------------- statistics


def stats(lives: Lives, names) -> dict:
    """Lives, mean lifespan, Crafter score, cause counts and share dying asleep of a group of lives."""
    n = len(lives)
    if n == 0:
        return {"lives": 0}
    known = lives.asleep[~np.isnan(lives.asleep)]
    return {
        "lives": n,
        "lifespan": float(lives.lifespan.mean()),
        "crafter": crafter_score(100.0 * lives.achieved.mean(axis=0)) if len(names) else float("nan"),
        "rates": 100.0 * lives.achieved.mean(axis=0),
        "causes": Counter(lives.cause.tolist()),
        "asleep": float(known.mean()) if known.size else float("nan"),
    }


def split(run: Run, parts: int, among=None) -> tuple[np.ndarray, list[dict]]:
    """Cut [0, end] into `parts` equal spans of death step: the edges and each span's stats (of the lives
    `among`, a mask; default all)."""
    edges = np.linspace(0, run.end, parts + 1)
    which = np.digitize(run.lives.death, edges[1:-1], right=True)  # span i holds (edges[i], edges[i+1]]
    among = np.ones(len(run.lives), bool) if among is None else among
    return edges, [stats(run.lives.where((which == i) & among), run.names) for i in range(parts)]


def n_bins(n_lives: int) -> int:
    """About 20 lives a bin, 20 to 50 bins."""
    return int(np.clip(n_lives // 20, 20, 50))


def _pct(x: float) -> str:
    return "–" if np.isnan(x) else f"{100 * x:.0f}%"


def _share(x: float) -> str:
    return "<1%" if 0 < x < 0.005 else _pct(x)


def table(run: Run) -> str:
    """Per fifth of the run: lives, mean lifespan, Crafter score, top cause, share dying asleep."""
    edges, fifths = split(run, 5)
    head = f"{'steps (death)':<17} {'lives':>7} {'lifespan':>9} {'Crafter':>8}  {'top cause':<17} {'asleep':>6}"
    rows = [head]
    for lo, hi, s in zip(edges[:-1], edges[1:], fifths):
        span = f"{int(lo):,}-{int(hi):,}"
        if not s["lives"]:
            rows.append(f"{span:<17} {0:>7} {'–':>9} {'–':>8}  {'–':<17} {'–':>6}")
            continue
        cause, k = s["causes"].most_common(1)[0]
        top = f"{cause} {100 * k / s['lives']:.0f}%"
        rows.append(f"{span:<17} {s['lives']:>7,} {s['lifespan']:>9.1f} {s['crafter']:>8.2f}  "
                    f"{top:<17} {_pct(s['asleep']):>6}")
    if run.control.any():  # the in-run control: the last fifth, learners against the control
        groups = [split(run, 5, m)[1][-1] for m in (~run.control, run.control)]
        value = lambda key, form: " against ".join(f"{g[key]:{form}}" if g["lives"] else "–" for g in groups)  # noqa: E731
        rows.append(f"last fifth, {run.groups[0]} against the in-run control (agents.control_share, its "
                    f"{CONTROL_GROUPS[run.lacks][2]}): lifespan {value('lifespan', '.1f')}, Crafter {value('crafter', '.2f')} "
                    f"({groups[0]['lives']:,} and {groups[1]['lives']:,} lives)")
    return "\n".join(rows)


def headline(run: Run) -> str:
    return f"{run.path}: {len(run.lives):,} lives to step {run.end:,} ({run.env})"


# --------------------------------------------------------------------------- the picture


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="#666666",
            wrap=True)


def _lifespan_panel(ax, run: Run, centres, bins) -> None:
    lives = run.lives
    shown = np.random.default_rng(0).permutation(len(lives))[:6000]  # a faint sample of every life
    ax.scatter(lives.death[shown], lives.lifespan[shown], s=5, color="#2e86de", lw=0, label="a life",
               alpha=float(np.clip(8 / np.sqrt(len(shown)), 0.08, 0.5)))
    ax.plot(centres, [b["lifespan"] for b in bins], color="#1b4f72", lw=2, marker="o", ms=3,
            label="mean per bin")
    if run.control.any():  # the others and the in-run control, each a mean per fifth
        for mask, colour, label in ((~run.control, "#16a085", run.groups[0]), (run.control, "#d35400", run.groups[1])):
            edges, fifths = split(run, 5, mask)
            ax.plot((edges[:-1] + edges[1:]) / 2, [f.get("lifespan", np.nan) for f in fifths], color=colour, lw=2,
                    marker="s", ms=5, label=f"{label}, mean per fifth (agents.control_share)")
    top = float(lives.lifespan.max()) * 1.05 + 1
    ax.plot([0, top], [0, top], ls=":", color="#555555", lw=1, label="upper bound (born at step 0)")
    ax.set_ylim(0, top)
    ax.set_ylabel("lifespan (steps)")
    ax.set_title("Lifespan of lives, by step of death")
    ax.legend(loc="upper left", fontsize=8, frameon=False)


def _causes_panel(ax, run: Run, centres, bins) -> None:
    total = Counter(run.lives.cause.tolist())
    causes = [c for c, _ in total.most_common()]
    shares = np.array([[b["causes"][c] / b["lives"] for b in bins] for c in causes])
    colours = [CAUSE_COLOURS.get(c, "#bbbbbb") for c in causes]
    labels = [f"{c} {_share(total[c] / len(run.lives))}" for c in causes]
    ax.stackplot(centres, 100 * shares, colors=colours, labels=labels, alpha=0.9)
    ax.set_ylim(0, 100)
    ax.set_ylabel("share of deaths (%)")
    ax.set_title("Causes of death (legend: share over the run)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)


def _crafter_panel(ax, run: Run, centres, bins) -> None:
    scores = [b["crafter"] for b in bins]
    ax.plot(centres, scores, color="#27ae60", lw=2, marker="o", ms=3)
    ax.set_ylim(0, max(max(scores), 0.1) * 1.25)  # room for the line of text at the top
    ax.set_ylabel("Crafter score")
    ax.set_title(f"Crafter score per bin (over all {len(run.names)} achievements)")
    last = stats(run.lives.where(run.lives.death > 0.8 * run.end), run.names)
    if last["lives"]:
        order = np.argsort(-last["rates"])[:4]
        common = ", ".join(f"{run.names[i]} {last['rates'][i]:.0f}%" for i in order if last["rates"][i] > 0)
        ax.text(0.01, 0.97, f"last fifth: {common or 'no achievements'}", transform=ax.transAxes,
                va="top", fontsize=8, color="#333333")


def _scalar_panel(ax, run: Run, title: str, tags: dict, missing: str, ylabel: str, spread: bool = False,
                  change: bool = False) -> None:
    """TensorBoard scalars {label: tag} over the run: as logged (with their `_spread` band where
    `spread`) or as the change since their first value (`change`)."""
    ax.set_title(title)
    if not tags:
        _note(ax, run.tb_note or missing)
        return
    for label, tag in tags.items():
        steps, values = run.scalars[tag]
        shown = values - values[0] if change else values
        line, = ax.plot(steps, shown, lw=1.6, marker="o" if len(steps) <= 30 else None, ms=3,
                        label=f"{label} {shown[-1]:{'+' if change else ''}.2f}" if len(values) else label)
        if spread and f"{tag}_spread" in run.scalars:
            s_steps, s = run.scalars[f"{tag}_spread"]
            if np.array_equal(s_steps, steps):
                ax.fill_between(steps, values - s, values + s, color=line.get_color(), alpha=0.15, lw=0)
    if change:
        ax.axhline(0, color="#888888", lw=0.8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False, title="at the end",
              title_fontsize=8)
    ax.set_ylabel(ylabel)


def _tags(run: Run, prefix: str, suffix: str = "") -> dict:
    """{label: tag} of the scalars under `prefix` (ending in `suffix`), their spreads left out."""
    return {t[len(prefix):len(t) - len(suffix)]: t for t in sorted(run.scalars)
            if t.startswith(prefix) and t.endswith(suffix) and not t.endswith("_spread")}


def _drives_panel(ax, run: Run) -> None:
    _scalar_panel(ax, run, "Drive weights of the living population (mean ± spread)", _tags(run, "drives/"),
                  "no drives/* scalars in tb/ (random agents write none)", "reward weight", spread=True)


def _entropy_panel(ax, run: Run) -> None:
    _scalar_panel(ax, run, "Gene-pool entropy of gene frequencies, per kind", _tags(run, "pool/", "/entropy"),
                  "no pool/*/entropy scalars in tb/ (random agents have no gene pool)", "entropy (nats)")


def _world_panel(ax, run: Run) -> None:
    _scalar_panel(ax, run, "World history: change per world since the first record", _tags(run, "world/"),
                  "no world/* scalars in tb/ (runs before the world history was logged)",
                  "blocks or mobs per world (change)", change=True)


def image(run: Run) -> np.ndarray:
    """[H, W, 3] uint8: the six panels and the table. Matplotlib's Agg canvas, no pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    edges, bins = split(run, n_bins(len(run.lives)))
    full = [i for i, b in enumerate(bins) if b["lives"]]
    centres = ((edges[:-1] + edges[1:]) / 2)[full]
    bins = [bins[i] for i in full]
    fig = Figure(figsize=(15, 14.5), dpi=100, facecolor="white")
    grid = fig.add_gridspec(4, 2, hspace=0.45, wspace=0.42, left=0.06, right=0.9, top=0.92, bottom=0.03,
                            height_ratios=(1, 1, 1, 0.6))
    panels = [fig.add_subplot(grid[i // 2, i % 2]) for i in range(6)]
    lifespan_ax, causes_ax, crafter_ax, drives_ax, entropy_ax, world_ax = panels
    table_ax = fig.add_subplot(grid[3, :])
    _lifespan_panel(lifespan_ax, run, centres, bins)
    _causes_panel(causes_ax, run, centres, bins)
    _crafter_panel(crafter_ax, run, centres, bins)
    _drives_panel(drives_ax, run)
    _entropy_panel(entropy_ax, run)
    _world_panel(world_ax, run)
    for ax in panels:
        ax.set_xlim(0, run.end)
        ax.set_xlabel("simulation step" if ax in (drives_ax, entropy_ax, world_ax) else "simulation step of death")
        ax.grid(alpha=0.25)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    table_ax.axis("off")
    table_ax.set_title("Per fifth of the run", loc="left")
    table_ax.text(0.0, 0.95, table(run), transform=table_ax.transAxes, va="top", family="monospace", fontsize=9)
    fig.suptitle(headline(run), fontsize=13, weight="bold", x=0.06, ha="left")
    fig.text(0.06, 0.955, f"{len(bins)} bins of {edges[1]:,.0f} steps; Crafter score = exp(mean ln(1 + success %)) - 1",
             fontsize=9, color="#555555")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def write(run_dir, out=None) -> tuple[Path, str]:
    """Draw the report of `run_dir` to `out` (default RUN_DIR/report.png); the path and the table.
    RunDirError when there is nothing to report, WriteError when the picture cannot be written."""
    run = load(run_dir)
    path = Path(out) if out is not None else run.path / REPORT
    picture = image(run)
    with writing(path):
        write_png(path, picture)
    return path, f"{headline(run)}\n{table(run)}"
