"""`lth-tui lmc`: linear mode connectivity of a stored round, or successive rounds' connectivity.

Split out of lth_tui/cli.py: these analyse a finished run (training two copies of a round, or
comparing consecutive rounds' solutions) and print one line per result; Ctrl-C cancels cleanly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lth_tui.cli_contract import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, bad_input, resolve_run_arg
from lth_tui.cli_foreground import StopFlag

__all__ = ["cmd_lmc"]


def cmd_lmc(args: argparse.Namespace) -> int:
    """Instability of one round (Frankle et al. 2020): barrier = max error rise over the ends' mean."""
    from engine.config import ConfigError
    from engine.datasets import DatasetError
    from engine.lmc import run_lmc
    from engine.store import StoreError
    from engine.training import Cancelled

    run_dir = resolve_run_arg(args)
    if run_dir is None:
        return EXIT_BAD_INPUT
    if args.successive:
        return successive(args, run_dir)
    if args.round_ is None:
        return bad_input(ValueError("lmc needs --round R (or --successive for every round)"), run_dir)
    stop = StopFlag()
    stop.install()
    try:
        record = run_lmc(run_dir, args.round_, rewind_iteration=args.rewind, trial=args.trial or 0, should_stop=stop)
    except (ConfigError, StoreError, DatasetError) as exc:
        return bad_input(exc, run_dir)
    except Cancelled:
        print("lmc cancelled; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED

    curve = record.get("curve", [])
    for point in curve:
        print(f"alpha {point['alpha']:.3f}  error {100 * point['error']:.2f}%")
    verdict = "stable" if record.get("stable") else "unstable"
    print(f"barrier {100 * record['barrier']:.2f}% ({verdict}, threshold {100 * record.get('threshold', 0.02):.0f}%)")
    return EXIT_OK


def successive(args: argparse.Namespace, run_dir: Path) -> int:
    """Successive-round connectivity of a stored run (engine/successive.py): one line per round."""
    from engine.config import ConfigError
    from engine.datasets import DatasetError
    from engine.store import StoreError
    from engine.successive import run_successive
    from engine.training import Cancelled

    if args.round_ is not None or args.rewind is not None:
        return bad_input(ValueError("--successive measures every round; it takes no --round or --rewind"), run_dir)

    def show(rec: dict) -> None:
        proj, unproj = rec["projected"], rec["unprojected"]
        print(f"trial {rec['trial']} round {rec['round']} ({100 * rec['weights_remaining']:.2f}% weights): "
              f"barrier {100 * proj['barrier']:.2f}% test / {100 * proj['barrier_train']:.2f}% train projected, "
              f"{100 * unproj['barrier']:.2f}% test unprojected; L2 {proj['l2']:.4g}, "
              f"cosine {proj['cosine'] or 0:.4f}", flush=True)

    stop = StopFlag()
    stop.install()
    try:
        records = run_successive(run_dir, args.trial, should_stop=stop, on_round=show)
    except (ConfigError, StoreError, DatasetError) as exc:
        return bad_input(exc, run_dir)
    except Cancelled:
        print("successive analysis cancelled; the rounds printed above were written", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not records:
        print("no pair of finished rounds to compare yet (round 1 onwards)", file=sys.stderr)
    return EXIT_OK
