"""Background job of tests/test_cli.py: one run directory taken through two `evodevo` processes
(configs/tiny.yaml as it is), beside the rest of the suite instead of on its critical path:

    1. `run --steps 10**7`                    killed with SIGKILL once lives before and past a checkpoint were logged
    2. `resume` to TOTAL steps                exits 0

    python cli_chain.py OUT_DIR TOTAL EVODEVO_ARGV...   (the `evodevo` command: its console script, or python -m evodevo.cli)

TOTAL is the length of the suite's uninterrupted run (conftest.py), which the resumed run must equal. The run
directory is OUT_DIR/run. Prints one JSON line: the checkpoints, lives and output of the killed process, and
the resume's exit status and output.
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


def main(out: Path, total: int, evodevo: list[str]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    d = out / "run"
    res = {"dir": str(d), "total": total}
    with open(out / "killed.out", "w") as o, open(out / "killed.err", "w") as e:
        proc = subprocess.Popen([*evodevo, "run", "--config", TINY, "--run-dir", str(d), "--steps", str(10**7)],
                                cwd=ROOT, stdout=o, stderr=e)
    t0 = time.monotonic()
    while True:  # until a checkpoint with lives logged before it and after it (checkpoint_every 100: before TOTAL)
        steps, lives = checkpoint_steps(d), read_lives(d)
        if steps and {life["death_step"] > steps[-1] for life in lives} == {False, True}:
            break
        if proc.poll() is not None or time.monotonic() - t0 > 600:
            proc.kill()
            res["killed"] = {"failed": f"exit {proc.poll()} before a checkpoint and lives after it",
                             "stderr": (out / "killed.err").read_text()[-3000:]}
            return res
        time.sleep(0.01)
    proc.kill()
    proc.wait(timeout=30)
    res["killed"] = {"returncode": proc.returncode, "checkpoints": checkpoint_steps(d), "lives": read_lives(d),
                     "lives_text": (d / LIFETIMES).read_text(), "stderr": (out / "killed.err").read_text()[-3000:]}
    checkpoint = res["killed"]["checkpoints"][-1]
    if checkpoint >= total:
        res["killed"]["failed"] = f"killed at checkpoint {checkpoint}, not before step {total}"
        return res
    resume = subprocess.run([*evodevo, "resume", str(d), "--steps", str(total - checkpoint)],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    res["resume"] = finished(resume)
    return res


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])))
