"""Throughput of a run with the live snapshot writer on vs off (the viewer must cost < 5%).

Both modes run in the same process on the same Runner after a warm-up (compile), in
alternating order chunk by chunk (on/off, off/on, ...), each repeat `--steps` simulation
steps per mode through `Runner.advance`, i.e. the real host loop: chunk, lifetimes, TensorBoard and, when on,
`SnapshotWriter.maybe_write`. The checkpoint that `advance` writes at its end is skipped
in both modes (same cost, unrelated to snapshots, and noisy). Prints a table and ends with
one JSON line. Throughputs come from the median chunk time of each mode (robust to other
jobs taking the cores for a while); `write_share_of_on_time` (seconds inside the writer / seconds of the "on"
mode) is the direct cost and is robust to a noisy machine, the ratio is the end-to-end check.

    .venv/bin/python benchmarks/snapshot_overhead.py                  # configs/default.yaml, random agents
    .venv/bin/python benchmarks/snapshot_overhead.py --repeats 5 --set world.n_slots=16
    .venv/bin/python benchmarks/snapshot_overhead.py --set agents.kind=transformer --steps 250 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evodevo import config  # noqa: E402
from evodevo.viewer.snapshot import SNAPSHOT, SnapshotWriter  # noqa: E402
from evodevo.world.runner import Runner  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    p.add_argument("--steps", type=int, default=1000, help="simulation steps per repeat")
    p.add_argument("--repeats", type=int, default=6, help="repeats per mode (alternating)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = p.parse_args(argv)

    # Random agents by default: the fastest run, so the largest relative cost of a snapshot
    # (a learning kind's chunks take far longer for the same one write per chunk).
    base = [] if any(o.strip().startswith("agents.kind=") for o in args.overrides) else ["agents.kind=random"]
    cfg = config.load(args.config, ["run.progress=false", "run.snapshot=true", *base, *args.overrides])
    n = cfg.world.n_slots
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner.create(Path(tmp) / "run", cfg)
        runner.checkpoint = lambda: None  # same cost in both modes; keep it out of the measurement
        writer = runner.snapshots
        assert isinstance(writer, SnapshotWriter)
        print(f"config {args.config} {' '.join(base + args.overrides)}: {cfg.agents.kind} agents, {n} slots, "
              f"chunk {cfg.run.chunk_steps}, "
              f"snapshot every {cfg.run.snapshot_every_s} s; warming up (compile) ...", flush=True)
        t0 = time.perf_counter()
        runner.advance(cfg.run.chunk_steps)  # compile + first snapshot
        runner.snapshots = None
        runner.advance(cfg.run.chunk_steps)
        print(f"warm-up {time.perf_counter() - t0:.1f} s", flush=True)

        # Modes alternate chunk by chunk (on/off, then off/on), so slow drifts in the machine's
        # load hit both alike; a repeat is `--steps` steps of each mode.
        chunk = cfg.run.chunk_steps
        per_repeat = max(1, args.steps // chunk)
        chunk_s = {"on": [], "off": []}  # seconds of each `advance(chunk)`
        on_time = write_time = 0.0
        print(f"\n{'repeat':>6} {'steps/mode':>10} {'on s':>7} {'off s':>7} {'on agent-steps/s':>17} "
              f"{'off agent-steps/s':>18} {'ratio':>6} {'snapshots':>9}")
        for r in range(args.repeats):
            spent = {"on": 0.0, "off": 0.0}
            writes0, write_s0 = writer.writes, writer.write_s
            for c in range(per_repeat):
                for mode in (("on", "off") if (r * per_repeat + c) % 2 == 0 else ("off", "on")):
                    runner.snapshots = writer if mode == "on" else None
                    t0 = time.perf_counter()
                    runner.advance(chunk)
                    dt = time.perf_counter() - t0
                    spent[mode] += dt
                    chunk_s[mode].append(dt)
            steps = per_repeat * chunk
            on_r, off_r = steps * n / spent["on"], steps * n / spent["off"]
            on_time += spent["on"]
            write_time += writer.write_s - write_s0
            print(f"{r:>6} {steps:>10} {spent['on']:>7.2f} {spent['off']:>7.2f} {on_r:>17,.0f} {off_r:>18,.0f} "
                  f"{on_r / off_r:>6.3f} {writer.writes - writes0:>9}", flush=True)
        runner.close()
        size = (Path(tmp) / "run" / SNAPSHOT).stat().st_size
    # Per-chunk medians: robust to another job taking the cores for a while.
    on = chunk * n / statistics.median(chunk_s["on"])
    off = chunk * n / statistics.median(chunk_s["off"])
    total_ratio = sum(chunk_s["off"]) / sum(chunk_s["on"])
    # each "on" chunk against the "off" chunk run right next to it (same load on the machine)
    paired = statistics.median(off_s / on_s for on_s, off_s in zip(chunk_s["on"], chunk_s["off"]))
    write_ms = 1000 * writer.write_s / max(writer.writes, 1)
    share = write_time / on_time
    print(f"\nagent-steps/s from the median chunk ({len(chunk_s['on'])} chunks per mode): on {on:,.0f}, "
          f"off {off:,.0f}, ratio {on / off:.3f} (within 5%: {'yes' if on / off >= 0.95 else 'NO'}); "
          f"ratio of total times {total_ratio:.3f}; median ratio of adjacent chunks {paired:.3f}")
    print(f"snapshot writer: {writer.writes} snapshots of {size / 1e6:.2f} MB, {write_ms:.1f} ms each, "
          f"{100 * share:.2f}% of the 'on' time")
    print(json.dumps({
        "on_agent_steps_per_s": round(on, 1), "off_agent_steps_per_s": round(off, 1),
        "ratio": round(on / off, 4), "agents": cfg.agents.kind, "total_time_ratio": round(total_ratio, 4),
        "paired_ratio": round(paired, 4), "n_slots": n, "snapshot_every_s": cfg.run.snapshot_every_s,
        "snapshot_writes": writer.writes, "write_ms_mean": round(write_ms, 2),
        "write_share_of_on_time": round(share, 5), "snapshot_bytes": size,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
