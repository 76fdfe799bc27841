"""Background job of tests/test_cli.py: one run directory taken through three `evodevo` processes
(configs/tiny.yaml as it is), beside the rest of the suite instead of on its critical path:

    1. `run --steps 300`                      exits 0
    2. `resume` (checkpoint_every=500)        killed with SIGKILL once lives past a checkpoint were logged
    3. `resume` to a total past those lives   exits 0

    python cli_chain.py OUT_DIR EVODEVO_ARGV...   (the `evodevo` command: its console script, or python -m evodevo.cli)

The run directory is OUT_DIR/run. Prints one JSON line: each process's exit status and output, the
run's lives and checkpoints after step 1, the checkpoint and lives at the kill, and the total.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from evodevo.world.runfiles import CHECKPOINTS, LIFETIMES

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "tiny.yaml")


def checkpoint_steps(run_dir) -> list[int]:
    d = Path(run_dir) / CHECKPOINTS
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def read_lives(run_dir) -> list[dict]:
    """Complete lines of lifetimes.jsonl (a line being written may be cut)."""
    path = Path(run_dir) / LIFETIMES
    lives = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                lives.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return lives


def finished(proc: subprocess.CompletedProcess) -> dict:
    return {"returncode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


def main(out: Path, evodevo: list[str]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    d = out / "run"
    res = {"dir": str(d)}
    run = subprocess.run([*evodevo, "run", "--config", TINY, "--run-dir", str(d), "--steps", "300"], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    res["run"] = finished(run)
    if run.returncode != 0:
        return res
    res["after_run"] = {"lives_text": (d / LIFETIMES).read_text(), "checkpoints": checkpoint_steps(d)}

    with open(out / "killed.out", "w") as o, open(out / "killed.err", "w") as e:
        proc = subprocess.Popen([*evodevo, "resume", str(d), "--steps", str(10**7), "--set", "run.checkpoint_every=500"],
                                cwd=ROOT, stdout=o, stderr=e)
    t0 = time.monotonic()
    while True:  # until a checkpoint past 300 and a life logged after it
        steps = checkpoint_steps(d)
        if steps and steps[-1] > 300 and any(life["death_step"] > steps[-1] for life in read_lives(d)):
            break
        if proc.poll() is not None or time.monotonic() - t0 > 600:
            proc.kill()
            res["killed"] = {"failed": f"exit {proc.poll()} before a checkpoint and lives after it",
                             "stderr": (out / "killed.err").read_text()[-3000:]}
            return res
        time.sleep(0.02)
    proc.kill()
    proc.wait(timeout=30)
    lives = read_lives(d)
    res["killed"] = {"returncode": proc.returncode, "checkpoint": checkpoint_steps(d)[-1], "lives": lives}
    res["total"] = max(life["death_step"] for life in lives) + 100
    resume = subprocess.run([*evodevo, "resume", str(d), "--steps", str(res["total"] - res["killed"]["checkpoint"])],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    res["resume"] = finished(resume)
    return res


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2:])))
