"""The CLI's strictness (issues #15 and #16): every refusal of input exits 2 with one line on
stderr, names the option, prints user data as written, and changes nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.fixture
def cli_db(tmp_path: Path) -> Path:
    net = tmp_path / "network.toml"
    net.write_bytes(run_cli("network", "example").stdout)
    db = tmp_path / "setara.db"
    run_cli("init", "--network", str(net), "--db", str(db))
    return db


def state(db: Path) -> bytes:
    """The verified state hash: equal before and after means nothing was written."""
    return run_cli("verify", "--db", str(db)).stdout.strip()


def refused(proc: subprocess.CompletedProcess[bytes], *needles: str) -> str:
    """Exit 2, nothing on stdout, exactly one line on stderr (no traceback) containing `needles`."""
    err = proc.stderr.decode()
    assert proc.returncode == 2, (proc.returncode, err)
    assert proc.stdout == b"", proc.stdout
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def test_version() -> None:
    proc = run_cli("--version")
    assert proc.stdout.decode().startswith("setara ") and proc.stderr == b""


def test_fund_reused_id_with_other_content_is_refused(cli_db: Path) -> None:
    db = str(cli_db)
    first = run_cli("fund", "--member", "BANK_ID1", "--currency", "IDR", "--amount", "10.00", "--id", "f1",
                    "--db", db)
    assert first.stdout.decode().startswith("f1 BANK_ID1 IDR ")
    before = state(cli_db)
    refused(run_cli("fund", "--member", "BANK_ID1", "--currency", "IDR", "--amount", "20.00", "--id", "f1",
                    "--db", db, check=False), "f1", "already used")
    assert state(cli_db) == before


@pytest.mark.parametrize("args", [
    ("fund", "--member", "NOPE", "--currency", "IDR", "--amount", "1.00"),
    ("withdraw", "--member", "NOPE", "--currency", "IDR", "--amount", "1.00"),
    ("statement", "--member", "NOPE", "--currency", "IDR"),
    ("member", "suspend", "NOPE"),
    ("member", "resume", "NOPE"),
    ("notify", "--member", "NOPE", "--out", "DIR"),
])
def test_unknown_member_is_refused_as_such(cli_db: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    before = state(cli_db)
    args = tuple(str(tmp_path / "n") if a == "DIR" else a for a in args)
    err = refused(run_cli(*args, "--db", str(cli_db), check=False), "unknown member NOPE")
    assert "account" not in err  # not "NOPE has no IDR account"
    assert state(cli_db) == before


def test_unknown_currency_is_refused(cli_db: Path) -> None:
    db = str(cli_db)
    refused(run_cli("fund", "--member", "BANK_ID1", "--currency", "XXX", "--amount", "1", "--db", db,
                    check=False), "--currency", "XXX")
    refused(run_cli("statement", "--member", "BANK_ID1", "--currency", "XXX", "--db", db, check=False), "XXX")
    before = state(cli_db)
    refused(run_cli("cycle", "close", "--currency", "XXX", "--db", db, check=False), "--currency",
            "XXX is not in the network")
    assert state(cli_db) == before


@pytest.mark.parametrize("rate", ["0", "0.000", "-1", "1e400", "1E2", "1/3", "abc", "", "0.1234567890123456789"])
def test_bad_rates_are_refused_and_keep_the_real_one(cli_db: Path, rate: str) -> None:
    db = str(cli_db)
    run_cli("fx", "rate", "--provider", "FX_MERDEKA", "--pair", "IDR/THB", "--rate", "0.0021", "--db", db)
    before = state(cli_db)
    refused(run_cli("fx", "rate", "--provider", "FX_MERDEKA", "--pair", "IDR/THB", "--rate", rate, "--db", db,
                    check=False), "--rate")
    assert state(cli_db) == before
    assert "0.0021" in run_cli("fx", "rates", "--db", db).stdout.decode().splitlines()[1]


def test_fx_refusals_name_the_option(cli_db: Path) -> None:
    db = str(cli_db)
    refused(run_cli("fx", "rate", "--provider", "NOPE", "--pair", "IDR/THB", "--rate", "1", "--db", db,
                    check=False), "--provider", "unknown member NOPE")
    refused(run_cli("fx", "rate", "--provider", "FX_MERDEKA", "--pair", "IDR/XXX", "--rate", "1", "--db", db,
                    check=False), "--pair")
    refused(run_cli("fx", "quote", "--provider", "FX_MERDEKA", "--pair", "IDR/THB", "--rate", "1",
                    "--valid-for", "0", "--db", db, check=False), "--valid-for")


def test_init_on_an_existing_database_is_refused(cli_db: Path, tmp_path: Path) -> None:
    before = state(cli_db)
    net = tmp_path / "network.toml"
    refused(run_cli("init", "--network", str(net), "--db", str(cli_db), check=False), "already holds a network")
    assert state(cli_db) == before


def test_bad_schema_in_the_database_url_is_refused(tmp_path: Path) -> None:
    net = tmp_path / "network.toml"
    net.write_bytes(run_cli("network", "example").stdout)
    for args in (("export", "balances"), ("verify",), ("init", "--network", str(net)), ("lists", "status")):
        refused(run_cli(*args, "--db", "postgresql://u@127.0.0.1:1/test?schema=a-b;drop", check=False),
                "--db", "invalid schema name")


def test_messages_and_user_data_are_printed_without_markup(cli_db: Path, tmp_path: Path) -> None:
    db = str(cli_db)
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    refused(run_cli("network", "apply", str(empty), "--db", db, check=False),
            "[[add_member]], [[credit_line]] or [[node]]")
    refused(run_cli("cancel", "[bold]x[/bold]", "--db", db, check=False), "unknown payment [bold]x[/bold]")
    refused(run_cli("member", "suspend", "[red]B[/red]:smile:", "--db", db, check=False),
            "unknown member [red]B[/red]:smile:")


def test_unknown_payment_is_named_as_such(cli_db: Path) -> None:
    db = str(cli_db)
    refused(run_cli("cancel", "nope", "--db", db, check=False), "unknown payment nope")
    err = refused(run_cli("holds", "release", "nope", "--officer", "ana", "--note", "checked", "--db", db,
                          check=False), "unknown payment nope")
    assert "HELD" not in err


@pytest.mark.parametrize("missing", ["--officer", "--note"])
@pytest.mark.parametrize("decision", ["release", "reject"])
def test_hold_decisions_need_an_officer_and_a_note(cli_db: Path, decision: str, missing: str) -> None:
    opts = {"--officer": "ana", "--note": "checked the passport"}
    del opts[missing]
    args = [a for kv in opts.items() for a in kv]
    refused(run_cli("holds", decision, "p1", *args, "--db", str(cli_db), check=False), missing)
    blank = {**opts, missing: "  "}
    refused(run_cli("holds", decision, "p1", *[a for kv in blank.items() for a in kv], "--db", str(cli_db),
                    check=False), missing)


def test_sanctions_warning_only_on_commands_that_screen(cli_db: Path, tmp_path: Path) -> None:
    db = str(cli_db)
    for args in (("export", "balances"), ("network", "show"), ("queue",), ("fx", "rates"),
                 ("fund", "--member", "BANK_ID1", "--currency", "IDR", "--amount", "1"), ("day", "close")):
        assert b"sanctions" not in run_cli(*args, "--db", db).stderr, args
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"id": "w1", "debtor": "BANK_ID1", "creditor": "BANK_ID2", "currency": "IDR",
                             "amount": "1.00"}) + "\n")
    assert b"no sanctions list is loaded" in run_cli("submit", str(f), "--db", db).stderr
    names = tmp_path / "names.txt"
    names.write_text("Jane Doe\n")
    assert b"no sanctions list is loaded" in run_cli("screen", str(names), "--db", db).stderr


def test_submit_batch_out_of_range_is_refused(cli_db: Path, tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"id": "b1", "debtor": "BANK_ID1", "creditor": "BANK_ID2", "currency": "IDR",
                             "amount": "1.00"}) + "\n")
    before = state(cli_db)
    for batch in ("0", "-5", "50001"):
        refused(run_cli("submit", str(f), "--batch", batch, "--db", str(cli_db), check=False), "--batch")
    assert state(cli_db) == before


def test_output_paths_are_checked_before_anything_is_submitted(cli_db: Path, tmp_path: Path) -> None:
    f = tmp_path / "p.xml"
    f.write_text('<?xml version="1.0"?><Document/>')  # never read: the --replies check comes first
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    before = state(cli_db)
    refused(run_cli("submit", str(f), "--replies", str(a_file), "--db", str(cli_db), check=False),
            "--replies", "not a directory")
    refused(run_cli("submit", str(f), "--replies", str(a_file / "sub"), "--db", str(cli_db), check=False),
            "--replies")
    refused(run_cli("notify", "--out", str(a_file), "--db", str(cli_db), check=False), "--out", "not a directory")
    assert state(cli_db) == before
    ok = tmp_path / "new" / "replies"  # creatable: fine
    run_cli("notify", "--out", str(ok), "--db", str(cli_db))
    assert ok.is_dir()


def test_withdraw_speaks_in_the_currency_not_minor_units(cli_db: Path) -> None:
    db = str(cli_db)
    bal = run_cli("fund", "--member", "BANK_ID2", "--currency", "IDR", "--amount", "0.50", "--db", db)
    available = bal.stdout.decode().split()[-1]
    before = state(cli_db)
    err = refused(run_cli("withdraw", "--member", "BANK_ID2", "--currency", "IDR", "--amount", "99999999999999",
                          "--db", db, check=False), "--amount", f"has only {available} IDR available")
    assert "minor units" not in err
    assert state(cli_db) == before
    done = run_cli("withdraw", "--member", "BANK_ID2", "--currency", "IDR", "--amount", "0.50", "--db", db)
    assert done.stdout.decode().split()[-1] == available[:-3] + ".00"


def test_usage_errors_from_the_parser_are_one_line(cli_db: Path) -> None:
    refused(run_cli("fund", "--member", "BANK_ID1", "--db", str(cli_db), check=False), "--currency")
    refused(run_cli("nosuchcommand", check=False), "nosuchcommand")
    refused(run_cli("export", "balances", "--bogus", check=False), "--bogus")
    refused(run_cli("submit", "x", "--batch", "many", check=False), "--batch")


def test_the_cli_imports_neither_the_store_nor_the_engine() -> None:
    """The CLI is a shell over the node's use cases and views (issue #13): it reaches the store
    and the engine only through `setara.node`."""
    import ast

    forbidden = ("setara.store", "setara.core.engine", "setara.core.commands")
    cli = Path(__file__).resolve().parents[1] / "src" / "setara" / "cli"
    modules = sorted(cli.glob("*.py"))
    assert len(modules) >= 10  # one per command group
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name != "setara.core" and not name.startswith(forbidden), f"{path.name} imports {name}"
