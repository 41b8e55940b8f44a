"""Write the seed corpora of the fuzz harnesses, built from the test suite's own inputs (never
from ../shared copies): the JSON lines of tests/test_store_backends.py (valid, queued, refused and
malformed), the strict-JSON cases of issue #15, and the pacs.008 builder of tests/test_api.py.

    .venv/bin/python fuzz/make_corpus.py fuzz/corpus    # -> fuzz/corpus/jsonl, fuzz/corpus/iso20022
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def jsonl_seeds() -> list[bytes]:
    from tests.test_store_backends import MIXED, pay

    seeds = [*MIXED, b"\n".join(MIXED)]
    seeds += [pay("n1", amount=raw).replace(f'"{raw}"'.encode(), raw.encode())  # JSON numbers
              for raw in ("1.999999999999999999", "1e2", "12.5")]
    seeds += [pay("d1")[:-1] + b',"amount":"5000.00"}',  # a key twice
              pay("a/b?c#d%2F"), pay(".."),
              pay("p9", priority="URGENT", to_currency="THB", uetr="0f3c1e9a-2b4d-4c6e-8f10-123456789abc",
                  debtor_name="Kopi Nusantara PT", creditor_country="ID", intermediary_names=["A", "B"]),
              b"\xef\xbb\xbf" + pay("bom") + b"\r", b"  \n\n" + pay("after-blank"), b"[]", b"{}"]
    return seeds


def iso_seeds() -> list[bytes]:
    from tests.test_api import pacs008

    uetr = "0f3c1e9a-2b4d-4c6e-8f10-123456789abc"
    return [pacs008(uetr), pacs008(uetr, amount="0.001"), pacs008(uetr, "JAWAIDJAXXX", "NUSAIDJAXXX"),
            pacs008("not-a-uuid"), pacs008(uetr).replace(b'Ccy="IDR"', b'Ccy="XXX"'),
            pacs008(uetr).replace(b"pacs.008.001.08", b"pacs.009.001.08"), b"<not-iso/>"]


def write(target: Path) -> dict[str, int]:
    sys.path.insert(0, str(REPO))
    counts = {}
    for name, seeds in (("jsonl", jsonl_seeds()), ("iso20022", iso_seeds())):
        d = target / name
        d.mkdir(parents=True, exist_ok=True)
        for s in seeds:
            (d / hashlib.sha1(s).hexdigest()).write_bytes(s)
        counts[name] = len(seeds)
    return counts


if __name__ == "__main__":
    print(write(Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "fuzz" / "corpus")))
