"""Where a named payment's time goes (issue 17): the intake worker's cost per line (decode,
validate, digest, screen) and the engine process's (settle, stage, commit), each on one core.

    .venv/bin/python bench/bench_named_intake.py [--n 100000] [--un-list PATH]

With --un-list, names are screened against the UN list; the first pass over the file meets every
name for the first time, the second finds them in the name cache.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from setara.bench import NAMED_CURRENCIES, NAMED_POOL, write_payments
from setara.core.network import example_toml, load_network
from setara.node.intake import NameScreening, Segment, parse_chunk
from setara.node.node import Node
from setara.ports import NullScreening, Screening

CHUNK = 2000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--un-list", type=Path)
    args = ap.parse_args()
    net = load_network(example_toml())
    screening: Screening = NullScreening()
    if args.un_list is not None:
        from setara.compliance.lists import load_list_path
        from setara.node.screening import PaymentScreening

        screening = PaymentScreening({"un-xml": (1, load_list_path("un-xml", args.un_list))})
    with tempfile.TemporaryDirectory(prefix="setara-bench-named-intake-") as tmp:
        src = Path(tmp) / "p.jsonl"
        write_payments(src, args.n, seed=4, parties=True, pool_size=NAMED_POOL, currencies=NAMED_CURRENCIES)
        lines = src.read_bytes().splitlines(keepends=True)
        names = NameScreening(screening, net)
        names.cache_refs()  # build the screener outside the timing, as the node does before forking
        chunks: list[list[Segment]] = []
        for label in ("first pass", "second pass (names cached)"):
            start = time.perf_counter()
            chunks = [parse_chunk(lines[i:i + CHUNK], i + 1, net, b"k" * 32, screening, 1, names)
                      for i in range(0, len(lines), CHUNK)]
            us = (time.perf_counter() - start) / len(lines) * 1e6
            print(f"intake, {label}: {us:.2f} us per line ({names.screened:,} names screened so far)")
        node = Node.create(str(Path(tmp) / "s.db"), net, 1)
        node.screening = screening
        start = time.perf_counter()
        n = sum(len(acks) for acks in node.submit_parsed(iter(chunks), clock=lambda: 2))
        print(f"engine: {(time.perf_counter() - start) / n * 1e6:.2f} us per payment (stage, seal, commit)")
        node.close()


if __name__ == "__main__":
    main()
