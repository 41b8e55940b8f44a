"""The simulator: generated days, BoF-PSS2 bounds, liquidity search, designs, scenarios."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from setara.sim import (
    Design,
    Stress,
    base_network,
    bounds_of,
    find_liquidity_needed,
    generate_day,
    liquidity_at,
    load_csv_day,
    run_day,
)
from setara.sim.commands import register
from setara.sim.day import usd_value
from setara.sim.scenario import EXAMPLE_SCENARIO, ScenarioError, load_scenario, simulate

NET = base_network()
UNITS = {c: v.currency.minor_units for c, v in NET.currencies.items()}


def _usd(by: dict[str, int]) -> float:
    return sum(usd_value(v, c, UNITS[c]) for c, v in by.items())


@pytest.fixture(scope="module")
def small() -> tuple[object, object]:
    day = generate_day(NET, 400, seed=3)
    return day, bounds_of(NET, day)


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_generator_is_deterministic_and_shaped() -> None:
    a = generate_day(NET, 500, seed=11, sanctioned_names=("Viktor Demoskov",), sanctioned_payments=3)
    b = generate_day(NET, 500, seed=11, sanctioned_names=("Viktor Demoskov",), sanctioned_payments=3)
    c = generate_day(NET, 500, seed=12)
    assert a == b and a.payments != c.payments
    times = [p.time_s for p in a.payments]
    assert times == sorted(times) and a.start_s <= times[0] and times[-1] <= a.end_s - 1800
    assert sum(p.sanctioned for p in a.payments) == 3
    assert any(p.to_currency for p in a.payments)
    assert all(p.amount_minor > 0 and p.debtor != p.creditor for p in a.payments)
    # scale-free: the busiest member sends far more than the quietest
    sent: dict[str, int] = {}
    for p in a.payments:
        sent[p.debtor] = sent.get(p.debtor, 0) + 1
    assert max(sent.values()) >= 3 * min(sent.values())


def test_bounds_are_ordered_and_gross_settles_everything_at_the_upper_bound(small: tuple) -> None:  # type: ignore[type-arg]
    day, b = small
    assert all(0 <= b.lower[a] <= b.upper[a] for a in b.upper)
    r = run_day(NET, day, Design("gross"), liquidity_at(b, 1.0), target=b.target)
    assert r.complete and r.unsettled == 0
    assert max(r.delays_s) == 0  # the upper bound is exactly "no queuing delay"


def test_liquidity_saving_settles_at_least_as_much_as_gross(small: tuple) -> None:  # type: ignore[type-arg]
    day, b = small
    for level in (0.0, 0.2):
        liq = liquidity_at(b, level)
        gross = run_day(NET, day, Design("gross"), liq, target=b.target)
        # Periodic multilateral saving (which also runs at cut-off). Bilateral offsetting on entry
        # alone is path-dependent and is NOT monotone: on this very day it can leave more unsettled
        # than gross RTGS (docs/simulator.md), so it is not part of this invariant.
        for d in (Design("partial", periodic="partial"), Design("aon", periodic="all-or-nothing"),
                  Design("optimise", "bilateral", "optimise", period_s=1800)):
            r = run_day(NET, day, d, liq, target=b.target)
            assert _usd(r.unsettled_value) <= _usd(gross.unsettled_value) + 1e-6, (d.name, level)
            assert r.settled >= gross.settled


def test_liquidity_needed_lies_between_the_bounds(small: tuple) -> None:  # type: ignore[type-arg]
    day, b = small
    for d in (Design("gross"), Design("partial", periodic="partial")):
        level, liq, _runs, settles = find_liquidity_needed(NET, day, d, b, steps=5)
        assert settles
        assert 0.0 <= level <= 1.0
        for acct, v in liq.items():
            assert b.lower[acct] <= v <= b.upper[acct]
        assert run_day(NET, day, d, liq, target=b.target).complete
    # a multilateral algorithm run at cut-off settles the day on the lower bound itself
    level, _liq, _, _ = find_liquidity_needed(NET, day, Design("aon", periodic="all-or-nothing"), b, steps=3)
    assert level == 0.0


def test_runs_are_deterministic(small: tuple) -> None:  # type: ignore[type-arg]
    day, b = small
    for d in (Design("hybrid", "bilateral", "partial", 600, ("PHP",), 1800),
              Design("optimise", "bilateral", "optimise", 1800)):
        r1 = run_day(NET, day, d, liquidity_at(b, 0.1), target=b.target, series=True)
        r2 = run_day(NET, day, d, liquidity_at(b, 0.1), target=b.target, series=True)
        assert r1.state_hash == r2.state_hash and r1.delays_s == r2.delays_s and r1.cycles == r2.cycles


def test_stress_outage_and_fx_stop(small: tuple) -> None:  # type: ignore[type-arg]
    day, b = small
    liq = liquidity_at(b, 0.2)
    d = Design("lsm", "bilateral", "partial", 600)
    base = run_day(NET, day, d, liq, target=b.target)
    out = run_day(NET, day, d, liq, target=b.target, stress=Stress("o", "outage", "BANK_MY1", 10 * 3600, 14 * 3600))
    assert out.delay_stats()["mean_s"] > base.delay_stats()["mean_s"]
    fx = run_day(NET, day, d, liq, stress=Stress("f", "fx_stop", "FX_MERDEKA", 9 * 3600), target=b.target)
    fx_other = run_day(NET, day, d, liq, stress=Stress("f", "fx_stop", "FX_STRAITS", 9 * 3600), target=b.target)
    # with one provider gone the other quotes; payments it is party to have no rate left (AG09)
    assert fx.rejected >= base.rejected and fx_other.rejected >= base.rejected


def test_recorded_csv_day(tmp_path: Path) -> None:
    text = ("id,debtor,creditor,currency,amount,priority,time\n"
            "a,BANK_ID1,BANK_ID2,IDR,1000.00,NORMAL,09:00\n"
            "b,BANK_ID2,BANK_ID3,IDR,1000.00,URGENT,09:00:05\n"
            "c,BANK_ID3,BANK_ID1,IDR,1000.00,,32500\n")
    day = load_csv_day(text, NET)
    assert [p.id for p in day.payments] == ["a", "b", "c"] and day.payments[1].priority == 0
    b = bounds_of(NET, day)
    # a ring nets to zero; gross RTGS needs only the first payer's 1000.00 up front
    assert sum(b.lower.values()) == 0 and sum(b.upper.values()) == 100_000
    r = run_day(NET, day, Design("aon", periodic="all-or-nothing", period_s=60), liquidity_at(b, 0.0))
    assert r.complete


def test_example_round_trips_through_simulate(tmp_path: Path) -> None:
    res = CliRunner().invoke(_app(), ["simulate", "--example"])
    assert res.exit_code == 0 and "[[designs]]" in res.stdout
    load_scenario(res.stdout)  # the example itself is valid
    small_text = (res.stdout.replace("payments = 3000", "payments = 120")
                  .replace("search_steps = 7", "search_steps = 3").replace("period_s = 600", "period_s = 3600"))
    scen = tmp_path / "scen.toml"
    scen.write_text(small_text)
    out = tmp_path / "res"
    res = CliRunner().invoke(_app(), ["simulate", str(scen), "--out", str(out), "--workers", "2"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().endswith("results.json")
    data = json.loads((out / "results.json").read_text())
    assert data["seeds"] == [7] and len(data["designs"]) >= 3
    for n in data["liquidity_needed"]:
        assert n["seed"] == 7
        assert float(n["lower_bound"]) <= float(n["liquidity_needed"]) <= float(n["upper_bound"])
        day = data["days"][0]
        for c, v in n["liquidity_needed_minor"].items():
            assert day["lower_bound_minor"][c] <= v <= day["upper_bound_minor"][c]
    # one row per run: designs x levels, plus one per stress case
    levels = data["levels"]
    assert len(data["runs"]) == len(data["designs"]) * len(levels) + 3
    assert set(data["stress"]) == {"outage", "liquidity-shock", "fx-provider-stops"}
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4
    assert (out / "designs.csv").read_text().startswith("design,seed,")
    assert len((out / "sweep.csv").read_text().splitlines()) == 1 + len(data["runs"])


def test_simulate_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[designs]]\nname = 'x'\nperiodic = 'magic'\n")
    res = CliRunner().invoke(_app(), ["simulate", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "designs[0].periodic" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(_app(), ["simulate", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2


def test_sweep_section_is_checked() -> None:
    base = "[day]\npayments = 50\n[[designs]]\nname = 'g'\n"
    sc = load_scenario(base + "[sweep]\nseeds = 3\nliquidity = [0.2, 0.05, 0.1]\n")
    assert sc.day_seeds() == [1, 2, 3] and sc.levels == [0.05, 0.1, 0.2]
    assert sc.day_for(2).payments != sc.day_for(3).payments and sc.day_for(2) == sc.day_for(2)
    assert load_scenario(base).day_seeds() == [7]  # no [sweep]: the day's own seed
    for extra, key in (("seeds = 3\nrepeats = 2\n", "repeats"), ("seeds = 0\n", "sweep.seeds"),
                       ("liquidity = [0.1, 2.0]\n", "sweep.liquidity"), ("seeds = 'ten'\n", "sweep.seeds")):
        with pytest.raises(ScenarioError, match=re.escape(key)):
            load_scenario(base + "[sweep]\n" + extra)
    with pytest.raises(ScenarioError, match="not both"):
        load_scenario(base + "[liquidity]\nlevels = [0.1]\n[sweep]\nliquidity = [0.2]\n")
    twice = "[[stress]]\nname = 'o'\nkind = 'outage'\nmember = 'BANK_MY1'\n"
    with pytest.raises(ScenarioError, match=r"stress\[1\]\.name"):
        load_scenario(base + twice + twice)


def test_recorded_day_has_no_seeds_to_sweep(tmp_path: Path) -> None:
    (tmp_path / "day.csv").write_text("id,debtor,creditor,currency,amount,priority,time\n"
                                      "a,BANK_ID1,BANK_ID2,IDR,1000.00,NORMAL,09:00\n")
    text = "[day]\nrecorded = 'day.csv'\n[[designs]]\nname = 'g'\n"
    assert load_scenario(text, tmp_path).day_seeds() == [0]
    with pytest.raises(ScenarioError, match=r"sweep\.seeds"):
        load_scenario(text + "[sweep]\nseeds = 2\n", tmp_path)


_SWEEP = """
[day]
payments = 120
[liquidity]
reference = 0.1
search_steps = 3
[sweep]
liquidity = [0.0, 0.1, 0.5]
seeds = 4
[[designs]]
name = "gross"
[[designs]]
name = "lsm-partial"
periodic = "partial"
period_s = 1800
[[designs]]
name = "dns-60"
cycles = ["*"]
cycle_minutes = 60
[[stress]]
name = "outage"
kind = "outage"
member = "BANK_MY1"
start = "10:00"
end = "13:00"
design = "lsm-partial"
"""


def _without_timing(results: dict) -> dict:  # type: ignore[type-arg]
    return {k: v for k, v in results.items() if k != "timing"}


def test_sweep_over_seeds_keeps_one_row_per_run(tmp_path: Path) -> None:
    sc = load_scenario(_SWEEP)
    r = simulate(sc, tmp_path / "a", workers=1)
    assert r["seeds"] == [1, 2, 3, 4]
    sweep_runs = [x for x in r["runs"] if x["stress"] is None]
    assert len(sweep_runs) == 3 * 3 * 4 and len(r["runs"]) == 3 * 3 * 4 + 4
    assert {(x["design"], x["seed"], x["level"]) for x in sweep_runs} == {
        (d, s, lv) for d in ("gross", "lsm-partial", "dns-60") for s in (1, 2, 3, 4) for lv in (0.0, 0.1, 0.5)}
    assert all(isinstance(x["seed"], int) for x in r["runs"])
    assert len(r["liquidity_needed"]) == 3 * 4 and len(r["days"]) == 4
    # different seeds are different days
    assert len({d["gross_value"] for d in r["days"]}) == 4
    g = r["designs"]["gross"]
    lo, hi = (float(x) for x in g["liquidity_needed_ci95"])
    assert lo <= float(g["liquidity_needed"]) <= hi and lo < hi
    assert [b["level"] for b in g["by_level"]] == [0.0, 0.1, 0.5]
    assert (tmp_path / "a" / "sweep.csv").read_text().count("\n") == 1 + len(r["runs"])
    assert (tmp_path / "a" / "designs.csv").read_text().count("\n") == 1 + 3 * 4
    html = (tmp_path / "a" / "report.html").read_text()
    assert "seed by seed" in html and "95% confidence interval" in html
    assert html.count("data:image/png;base64,") >= 6


def test_interrupted_sweep_resumes_from_the_cache(tmp_path: Path) -> None:
    sc = load_scenario(_SWEEP.replace("seeds = 4", "seeds = 2"))
    full = simulate(sc, tmp_path / "ref", workers=1, cache=False)
    assert not (tmp_path / "ref" / "cache").exists()
    total = full["timing"]["tasks"]

    class Stop(Exception):
        pass

    def interrupt(done: int, _total: int) -> None:
        if done == 12:
            raise Stop

    out = tmp_path / "res"
    with pytest.raises(Stop):
        simulate(sc, out, workers=1, progress=interrupt)
    cached = len(list((out / "cache").glob("*.json")))
    bounds_tasks = 2 * 2  # per seed: the day and the outage; not cached (one cheap gross pass each)
    assert cached == 12 - bounds_tasks
    seen: list[int] = []
    resumed = simulate(sc, out, workers=2, progress=lambda d, t: seen.append(d))
    assert resumed["timing"]["from_cache"] == cached
    assert resumed["timing"]["executed"] == total - bounds_tasks - cached
    assert seen[-1] == total
    assert _without_timing(resumed) == _without_timing(full)
    # losing some entries re-runs exactly those
    victims = sorted((out / "cache").glob("*.json"))[:5]
    for v in victims:
        v.unlink()
    again = simulate(sc, out, workers=1)
    assert again["timing"]["executed"] == 5 and _without_timing(again) == _without_timing(full)
    for name in ("designs.csv", "sweep.csv", "stress.csv"):
        assert (out / name).read_text() == (tmp_path / "ref" / name).read_text()


def test_cache_key_follows_the_inputs() -> None:
    from setara.sim.sweep import task_key

    d = Design("g")
    k = task_key("run", "day", 1, {"design": d, "level": 0.1, "stress": None, "series": False})
    assert k == task_key("run", "day", 1, {"design": d, "level": 0.1, "stress": None, "series": False})
    assert k != task_key("run", "day", 2, {"design": d, "level": 0.1, "stress": None, "series": False})
    assert k != task_key("run", "day2", 1, {"design": d, "level": 0.1, "stress": None, "series": False})
    assert k != task_key("run", "day", 1, {"design": Design("g", period_s=60), "level": 0.1, "stress": None,
                                           "series": False})
    assert k != task_key("run", "day", 1, {"design": d, "level": 0.2, "stress": None, "series": False})


def test_parallel_workers_match_serial(tmp_path: Path) -> None:
    text = EXAMPLE_SCENARIO.replace("payments = 3000", "payments = 150")
    sc = load_scenario(text)
    sc.designs = sc.designs[:3]
    sc.stresses = []
    a = simulate(sc, tmp_path / "a", workers=1)
    b = simulate(sc, tmp_path / "b", workers=2)
    assert a["timing"]["workers"] == 1 and b["timing"]["workers"] == 2
    assert _without_timing(a) == _without_timing(b)


def test_dns_funded_at_the_upper_bound_settles_the_whole_day() -> None:
    # Closing one currency's cycle at a time left this day's FX providers short in the other leg's
    # currency at the upper bound (102 payments unsettled, 19 unwinds); one netting over every cycled
    # currency settles it, as net positions at a close never exceed the largest cumulative net debit.
    day = generate_day(NET, 1000, seed=1)
    b = bounds_of(NET, day)
    r = run_day(NET, day, Design("dns-60", cycles=("*",), cycle_s=3600), liquidity_at(b, 1.0), target=b.target)
    assert r.complete and r.unwinds == 0
    assert sum(1 for p in day.payments if p.to_currency) > 100  # PvP payments are part of it


def test_ray_missing_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without Ray
    scen = tmp_path / "s.toml"
    scen.write_text(EXAMPLE_SCENARIO.replace("payments = 3000", "payments = 50"))
    res = CliRunner().invoke(_app(), ["simulate", str(scen), "--out", str(tmp_path / "o"), "--ray", "local"])
    assert res.exit_code == 2 and "Ray" in res.output and "not installed" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


_PACS008 = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"><FIToFICstmrCdtTrf>
<GrpHdr><MsgId>M{n}</MsgId><CreDtTm>2026-01-05T{hh}:15:00+00:00</CreDtTm><NbOfTxs>1</NbOfTxs>
<SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf></GrpHdr>
<CdtTrfTxInf><PmtId><InstrId>I{n}</InstrId><EndToEndId>E{n}</EndToEndId>
<UETR>a1b2c3d4-e5f6-4890-abcd-ef12345678{n:02d}</UETR></PmtId>
<IntrBkSttlmAmt Ccy="IDR">{amount}</IntrBkSttlmAmt><IntrBkSttlmDt>2026-01-05</IntrBkSttlmDt><ChrgBr>SHAR</ChrgBr>
<InstgAgt><FinInstnId><BICFI>{deb}</BICFI></FinInstnId></InstgAgt>
<InstdAgt><FinInstnId><BICFI>{cred}</BICFI></FinInstnId></InstdAgt>
<Dbtr><Nm>PT Sinar Abadi</Nm><PstlAdr><Ctry>ID</Ctry></PstlAdr></Dbtr>
<DbtrAgt><FinInstnId><BICFI>{deb}</BICFI></FinInstnId></DbtrAgt>
<CdtrAgt><FinInstnId><BICFI>{cred}</BICFI></FinInstnId></CdtrAgt>
<Cdtr><Nm>PT Cahaya Makmur</Nm><PstlAdr><Ctry>ID</Ctry></PstlAdr></Cdtr>
</CdtTrfTxInf></FIToFICstmrCdtTrf></Document>
"""


def test_recorded_iso20022_day(tmp_path: Path) -> None:
    from setara.sim import load_iso20022_day

    ring = [("NUSAIDJA", "JAWAIDJA", "11"), ("JAWAIDJA", "SUMAIDJA", "09"), ("SUMAIDJA", "NUSAIDJA", "10")]
    for n, (deb, cred, hh) in enumerate(ring, start=1):
        (tmp_path / f"m{n}.xml").write_text(_PACS008.format(n=n, hh=hh, amount="2500.00", deb=deb, cred=cred))
    day = load_iso20022_day(tmp_path, NET)
    assert [(p.debtor, p.creditor, p.time_s // 3600) for p in day.payments] == [
        ("BANK_ID2", "BANK_ID3", 9), ("BANK_ID3", "BANK_ID1", 10), ("BANK_ID1", "BANK_ID2", 11)]
    assert day.payments[0].amount_minor == 250_000 and day.date == "2026-01-05"
    b = bounds_of(NET, day)
    assert sum(b.upper.values()) == 250_000 and sum(b.lower.values()) == 0
