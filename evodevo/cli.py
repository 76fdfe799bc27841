"""`evodevo` command line: thin wrappers over the library."""

from __future__ import annotations

import argparse
import shlex
import sys

from evodevo.config import ConfigError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evodevo", description="Open-ended evo-devo in a continuous Craftax world.")
    sub = p.add_subparsers(dest="verb", required=True)

    run = sub.add_parser("run", help="start a new run")
    run.add_argument("--config", default="configs/default.yaml", help="YAML preset (default: configs/default.yaml)")
    run.add_argument("--run-dir", required=True, help="directory for config, checkpoints, lifetimes and TensorBoard")
    run.add_argument("--steps", type=int, required=True, help="simulation steps (each advances every slot once)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override a config key (repeatable)")
    _distributed_args(run)

    res = sub.add_parser("resume", help="continue a run from its latest checkpoint")
    res.add_argument("run_dir", help="the run directory")
    res.add_argument("--steps", type=int, required=True, help="further simulation steps to run")
    res.add_argument("--set", dest="overrides", action="append", default=[], metavar="run.KEY=VALUE",
                     help="override a run.* key (repeatable)")
    _distributed_args(res)

    view = sub.add_parser("view", help="watch a run's agents in a pygame window")
    view.add_argument("run_dir", help="the run directory")
    view.add_argument("--checkpoint", default=None, metavar="STEP|latest",
                      help="show a checkpoint's state instead of the live snapshot")
    view.add_argument("--screenshot", default=None, metavar="PNG",
                      help="render one frame to this PNG and exit (no window needed)")

    rep = sub.add_parser("report", help="one PNG and a table of a run: lifespan, causes of death, "
                                        "Crafter score, drive weights, pool entropy")
    rep.add_argument("run_dir", help="the run directory")
    rep.add_argument("--out", default=None, metavar="PNG",
                     help="where to write the picture (default: RUN_DIR/report.png)")
    return p


def _distributed_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("several hosts", "one process per host, each started with the same command; the run "
                             "directory on a file system all hosts share (README: Several hosts)")
    g.add_argument("--distributed", action="store_true",
                   help="join a multi-host job (jax.distributed.initialize); on SLURM, Open MPI, Kubernetes and "
                        "TPU pods the three values below are found automatically")
    g.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address and a free port on it")
    g.add_argument("--num-processes", type=int, metavar="P", help="number of processes (hosts)")
    g.add_argument("--process-id", type=int, metavar="I", help="this process's index, 0 .. P-1")


def _join_hosts(args) -> None:
    """jax.distributed.initialize before anything touches a device, if asked for (any of the flags)."""
    given = {k: v for k, v in (("coordinator_address", args.coordinator), ("num_processes", args.num_processes),
                               ("process_id", args.process_id)) if v is not None}
    if not (args.distributed or given):
        return
    import jax

    try:
        jax.distributed.initialize(**given)
    except (ValueError, TypeError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"--distributed: {first}") from None


def _enable_compilation_cache() -> None:
    """Reuse compiled chunks across processes (a second run of a config skips most compilation)."""
    import os
    from pathlib import Path

    import jax

    if not jax.config.jax_compilation_cache_dir and not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", str(Path.home() / ".cache" / "evodevo" / "jax"))


EX_IOERR = 74  # sysexits.h: an input/output error (a full disk)


def _write_error_message(e, args) -> str:
    """One line: the file, the cause, where the run is intact and the command that continues it."""
    if e.intact_step is None:
        return f"{e}; nothing to resume yet: free space, then run the same `evodevo {args.verb}` command again"
    remaining = args.steps if e.remaining is None else e.remaining
    return (f"{e}; the run is intact at checkpoint step {e.intact_step}: free space, then continue with "
            f"`evodevo resume {shlex.quote(str(args.run_dir))} --steps {remaining}`")


def _next_commands(run_dir, steps: int) -> str:
    d = shlex.quote(str(run_dir))
    rows = [(f"evodevo view {d}", "watch the agents"),
            (f"tensorboard --logdir {shlex.quote(str(run_dir) + '/tb')}", "statistics"),
            (f"evodevo resume {d} --steps {steps}", f"{steps:,} more steps")]
    width = max(len(c) for c, _ in rows)
    return "Next:\n" + "\n".join(f"  {c:<{width}}   # {what}" for c, what in rows)


def _report(args) -> int:
    """Read the run's files, draw the picture, print the table: no simulation, no compile."""
    from evodevo import report
    from evodevo.world.runfiles import RunDirError, WriteError

    try:
        path, text = report.write(args.run_dir, args.out)
    except (ConfigError, RunDirError) as e:
        print(f"evodevo: error: {e}", file=sys.stderr)
        return 2
    except WriteError as e:
        print(f"evodevo: error: {e}", file=sys.stderr)
        return EX_IOERR
    print(text)
    print(f"Wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.verb == "report":
        return _report(args)
    _enable_compilation_cache()
    if args.verb == "view":
        from evodevo.viewer.app import main as view_main

        return view_main(args)
    from evodevo.world.checkpoint import CheckpointError
    from evodevo.world.runner import RunDirError, Runner, WriteError

    if args.steps < 0:
        print("evodevo: error: --steps must be >= 0", file=sys.stderr)
        return 2
    try:
        _join_hosts(args)
        if args.verb == "run":
            from evodevo import config

            cfg = config.load(args.config, args.overrides)
            runner = Runner.create(args.run_dir, cfg)
        else:
            runner = Runner.load(args.run_dir, args.overrides)
        try:
            finished = runner.advance(args.steps)
        finally:
            runner.close()
    except (ConfigError, RunDirError, CheckpointError) as e:
        print(f"evodevo: error: {e}", file=sys.stderr)
        return 2
    except WriteError as e:
        print(f"evodevo: error: {_write_error_message(e, args)}", file=sys.stderr)
        return EX_IOERR
    if finished:
        print(f"Run at step {runner.step}; outputs in {args.run_dir}")
        print(_next_commands(args.run_dir, args.steps or 1000))
        return 0
    import signal

    return 128 + int(getattr(signal, runner.stopped_by or "SIGINT"))  # the shell's convention: 130 INT, 143 TERM


if __name__ == "__main__":
    sys.exit(main())
