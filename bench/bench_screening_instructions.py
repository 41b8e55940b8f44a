"""Instructions per first-sight name, counted by valgrind's callgrind: a cost figure that, unlike CPU
time, does not move with the load of a shared machine.

Run: .venv/bin/python bench/bench_screening_instructions.py

It runs this script twice under `valgrind --tool=callgrind` (a few minutes): once loading the persisted
UN index only, once loading it and screening the distinct names of `bench_screening.py --first-sight`
with every cache cleared, and prints the difference per name. Reads ../shared/data/sanctions and
exits 0 with a note when the data or valgrind is absent. To compare two commits, run it from a
checkout (with its own build) of each.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _names() -> list[str]:
    sys.path.insert(0, str(HERE))
    import bench_screening as bs

    un = bs.load_list_path("un-xml", bs.DATA / "un" / "UN_consolidated.xml")
    queries = bs.perturbation_set(un, 20260227, 600) + bs.negatives()
    return list(dict.fromkeys(q.text for q in queries))


def _probe(blob_path: str, screen: bool) -> None:
    """The measured process: load the stored index, then (if screen) screen every name once."""
    sys.path.insert(0, str(HERE))
    import bench_screening as bs
    from setara.compliance.matcher import Screener

    un = bs.load_list_path("un-xml", bs.DATA / "un" / "UN_consolidated.xml")
    names = _names()
    bs._clear_caches()
    screener = Screener([un], cache_size=0, index=Path(blob_path).read_bytes())
    if screen:
        for name in names:
            screener.screen(name)


def _instructions(blob_path: str, screen: bool, out_dir: str) -> int:
    out = Path(out_dir) / ("screen.out" if screen else "load.out")
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
         "--probe", blob_path, "screen" if screen else "load"],
        check=True, capture_output=True,
    )
    match = re.search(r"^summary:\s*(\d+)", out.read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit(f"no instruction total in {out}")
    return int(match.group(1))


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--probe":
        _probe(sys.argv[2], sys.argv[3] == "screen")
        return 0
    sys.path.insert(0, str(HERE))
    import bench_screening as bs

    if not (bs.DATA / "un" / "UN_consolidated.xml").is_file():
        print(f"skipped: shared sanctions data not found at {bs.DATA}")
        return 0
    if shutil.which("valgrind") is None:
        print("skipped: valgrind is not installed")
        return 0
    from setara.compliance.matcher import COMPILED, Screener

    un = bs.load_list_path("un-xml", bs.DATA / "un" / "UN_consolidated.xml")
    names = _names()
    with tempfile.TemporaryDirectory() as tmp:
        blob_path = str(Path(tmp) / "index.bin")
        Path(blob_path).write_bytes(Screener([un], cache_size=0).index_bytes())
        load = _instructions(blob_path, False, tmp)
        total = _instructions(blob_path, True, tmp)
    per_name = (total - load) / len(names)
    print({"names": len(names), "compiled": COMPILED, "instructions_load": load,
           "instructions_load_and_screen": total, "instructions_per_name": round(per_name)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
