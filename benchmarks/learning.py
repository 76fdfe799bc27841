"""Learning agents next to random agents: benchmarks/ablations.py with only its `full` and `random` arms.

    python benchmarks/learning.py --config configs/default.yaml --agent-steps 300000

Same world seed and number of agent-steps per arm. Both of the ablations' windows (--first,
--last) span the whole budget, so each arm reports over all lives that ended within it: the
number of lives, mean lifespan and the Crafter score (lives still running at the end are not
counted), plus the pool's course. Any other ablations.py argument passes through; results and
the plot go to runs/learning/ unless --out says otherwise. Ends with ablations.py's JSON line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ablations  # noqa: E402


def main(argv=None) -> int:
    # Only --agent-steps is read here (both windows are the whole budget); -h shows ablations.py's help.
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--agent-steps", type=int, default=300_000)
    args, rest = p.parse_known_args(argv)
    budget = str(args.agent_steps)
    return ablations.main(["--arms", "full,random", "--out", str(HERE.parent / "runs" / "learning"),
                           "--agent-steps", budget, "--first", budget, "--last", budget, *rest])


if __name__ == "__main__":
    sys.exit(main())
