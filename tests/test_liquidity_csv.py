"""`setara settle` file handling: exact decimals, errors that name the place, end to end."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from setara.liquidity.csvio import run_settle
from setara.liquidity.generator import generate, write_csvs


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _settle(tmp_path: Path, balances: str, queue: str, **kw: object) -> dict[str, object]:
    b = _write(tmp_path / "b.csv", balances)
    q = _write(tmp_path / "q.csv", queue)
    args: dict[str, object] = {"respect_priority": False, "fifo": False, "time_limit_s": 10.0}
    args.update(kw)
    return run_settle(b, q, str(args.pop("algorithm", "optimise")), None, **args)  # type: ignore[arg-type]


RING_Q = (
    "id,debtor,creditor,currency,amount,priority,submitted_at\n"
    "p1,A,B,IDR,100.5,NORMAL,1\n"
    "p2,B,C,IDR,100.50,URGENT,2\n"
    "p3,C,A,IDR,100.5,NORMAL,3\n"
    "p4,A,B,MYR,7,NORMAL,4\n"
)


def test_ring_end_to_end_with_exact_scale(tmp_path: Path) -> None:
    out = _settle(tmp_path, "member,currency,balance\nA,IDR,0\nB,IDR,0.001\nA,MYR,6.99\n", RING_Q)
    assert out["settled_ids"] == ["p1", "p2", "p3"]
    assert out["count"] == 3
    # IDR scale is 3 decimals (the balance 0.001), so values keep 3 decimals, exactly
    assert out["settled_value"] == {"IDR": "301.500", "MYR": "0.00"}
    assert out["queue_value"] == {"IDR": "301.500", "MYR": "7.00"}
    assert out["queue_count"] == 4
    assert out["algorithm"] == "optimise"
    bounds = out["lp_bound"]
    assert isinstance(bounds, dict) and bounds["IDR"] == "301.500"


def test_out_file_written(tmp_path: Path) -> None:
    b = _write(tmp_path / "b.csv", "member,currency,balance\nA,IDR,0\n")
    q = _write(tmp_path / "q.csv", RING_Q)
    out_path = tmp_path / "s.csv"
    summary = run_settle(b, q, "partial", out_path, respect_priority=False, fifo=False, time_limit_s=5.0)
    assert "settled_ids" not in summary
    rows = list(csv.reader(out_path.open(encoding="utf-8")))
    assert rows == [["id"], ["p1"], ["p2"], ["p3"]]


@pytest.mark.parametrize(
    ("queue_line", "field"),
    [
        ("x,A,B,IDR,12.x,NORMAL,1", "amount"),
        ("x,A,B,IDR,-5,NORMAL,1", "amount"),
        ("x,A,B,IDR,0.00,NORMAL,1", "amount"),
        ("x,A,B,idr,5,NORMAL,1", "currency"),
        ("x,A,B,IDR,5,HIGH,1", "priority"),
        ("x,A,B,IDR,5,NORMAL,yesterday", "submitted_at"),
        ("x,A,A,IDR,5,NORMAL,1", "creditor"),
        (",A,B,IDR,5,NORMAL,1", "id"),
    ],
)
def test_queue_errors_name_line_and_field(tmp_path: Path, queue_line: str, field: str) -> None:
    queue = "id,debtor,creditor,currency,amount,priority,submitted_at\nok,A,B,IDR,1,NORMAL,0\n" + queue_line + "\n"
    with pytest.raises(ValueError) as exc:
        _settle(tmp_path, "member,currency,balance\nA,IDR,1\n", queue)
    msg = str(exc.value)
    assert "q.csv" in msg and "line 3" in msg and repr(field) in msg


def test_balance_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"b.csv: line 2: field 'balance'"):
        _settle(tmp_path, "member,currency,balance\nA,IDR,1e3\n", RING_Q)
    with pytest.raises(ValueError, match=r"line 3: field 'member'.*twice"):
        _settle(tmp_path, "member,currency,balance\nA,IDR,1\nA,IDR,2\n", RING_Q)
    with pytest.raises(ValueError, match=r"header lacks field\(s\) balance"):
        _settle(tmp_path, "member,currency\nA,IDR\n", RING_Q)
    with pytest.raises(ValueError, match=r"duplicate|appears twice"):
        _settle(tmp_path, "member,currency,balance\n", RING_Q + "p1,A,B,IDR,1,NORMAL,9\n")
    with pytest.raises(ValueError, match="cannot read"):
        run_settle(tmp_path / "missing.csv", tmp_path / "q.csv", "optimise", None, respect_priority=False,
                   fifo=False, time_limit_s=5.0)


def test_generated_files_round_trip(tmp_path: Path) -> None:
    q = generate(300, currencies=("IDR", "THB"), liquidity_fraction=0.1, rings=1, seed=3)
    b_path, q_path = tmp_path / "b.csv", tmp_path / "q.csv"
    write_csvs(q, b_path, q_path)
    for alg in ("optimise", "partial", "fifo"):
        out = run_settle(b_path, q_path, alg, tmp_path / "s.csv", respect_priority=False, fifo=False,
                         time_limit_s=6.0)
        assert out["queue_count"] == q.amount_minor.size
        ids = [r[0] for r in csv.reader((tmp_path / "s.csv").open(encoding="utf-8"))][1:]
        assert len(ids) == out["count"] and len(set(ids)) == len(ids)
