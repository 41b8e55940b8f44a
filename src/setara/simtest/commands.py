"""`setara simtest`: run the whole network under injected faults, one seed at a time."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

__all__ = ["register", "simtest"]

SEEDS_MAX = 1_000_000


def _usage(message: str) -> typer.Exit:
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(2)


def simtest(
    seed: Annotated[int, typer.Option("--seed", help="First seed (each seed replays exactly).")] = 1,
    seeds: Annotated[int, typer.Option("--seeds", help=f"How many seeds, from --seed on (1..{SEEDS_MAX}).")] = 1,
    faults: Annotated[str, typer.Option("--faults", help="Comma-separated faults, 'all' or 'none'.")] = "all",
    sabotage: Annotated[str | None, typer.Option(
        "--sabotage", help="Break one rule in the node code, to test the tester: ack-before-commit, "
                           "skip-signature-check or apply-block-twice.")] = None,
    steps: Annotated[int, typer.Option("--steps", help="Steps with faults per seed (1..1000).")] = 40,
    keep_going: Annotated[bool, typer.Option("--keep-going", help="Run every seed even after a failure.")] = False,
) -> None:
    """Run the real engine, node, replicator, follower and checkpoint code over a simulated stream,
    clock and disk with injected faults, checking every invariant after every step. Prints one
    line per failing seed (its first broken invariant and the command that reproduces it) and a
    summary; exits 1 when a seed fails."""
    from setara.simtest import sabotage as sabotage_mod
    from setara.simtest.world import FAULTS, liveness_bound, run_seed

    if not 1 <= seeds <= SEEDS_MAX:
        raise _usage(f"--seeds must be in 1..{SEEDS_MAX}")
    if seed < 0:
        raise _usage("--seed must be 0 or more")
    if not 1 <= steps <= 1000:
        raise _usage("--steps must be in 1..1000")
    names = {f.strip() for f in faults.split(",") if f.strip()}
    if names == {"all"}:
        chosen = set(FAULTS)
    elif names == {"none"}:
        chosen = set()
    else:
        unknown = sorted(names - set(FAULTS))
        if unknown or not names:
            raise _usage(f"--faults: unknown fault {unknown[0] if unknown else '(empty)'!r}; "
                         f"known: {', '.join(FAULTS)}, all, none")
        chosen = names
    if sabotage is not None and sabotage not in sabotage_mod.NAMES:
        raise _usage(f"--sabotage: unknown {sabotage!r}; known: {', '.join(sabotage_mod.NAMES)}")
    fault_arg = "all" if chosen == set(FAULTS) else ("none" if not chosen else ",".join(sorted(chosen)))
    extra = (f" --faults {fault_arg}" if fault_arg != "all" else "") + \
        (f" --steps {steps}" if steps != 40 else "") + (f" --sabotage {sabotage}" if sabotage else "")
    sabotage_mod.ACTIVE = sabotage
    failed = 0
    totals: dict[str, int] = {}
    start = time.perf_counter()
    try:
        for s in range(seed, seed + seeds):
            r = run_seed(s, chosen, steps=steps)
            for k, n in r.stats.items():
                totals[k] = totals.get(k, 0) + n
            if not r.ok:
                failed += 1
                v = r.violation
                assert v is not None
                print(f"seed {s}: FAILED at step {v.step}: {v.invariant}: {v.detail}")
                print(f"  reproduce: setara simtest --seed {s}{extra}")
                if not keep_going:
                    break
            if seeds > 1 and (s - seed + 1) % 100 == 0:
                print(f"simtest: {s - seed + 1} seeds run, {failed} failed", file=sys.stderr, flush=True)
    finally:
        sabotage_mod.ACTIVE = None
    ran = (s - seed + 1)
    secs = time.perf_counter() - start
    figures = ", ".join(f"{k} {v}" for k, v in totals.items())
    verdict = "every invariant held" if not failed else f"{failed} failed"
    # stdout is the result, the same for the same seeds; the time it took goes to stderr.
    print(f"simtest: seeds {seed}..{seed + ran - 1} ({ran}), faults {fault_arg}"
          f"{', sabotage ' + sabotage if sabotage else ''}: {verdict}; liveness bound {liveness_bound(chosen)}; "
          f"totals: {figures}")
    print(f"simtest: {ran} seed(s) in {secs:.1f} s", file=sys.stderr)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("simtest")(simtest)
