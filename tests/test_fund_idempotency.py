"""`fund`/`withdraw --id` is idempotent (issue #15, item 11): a retry with the same id and the same
content answers the first movement's result and posts nothing; the same id with other content is
refused (exit 2, one line naming the option and the id). The engine keeps only the used ids (its
state format is unchanged); the use case finds the first movement in the entries read model.

There is no funding endpoint in the HTTP API, so the use case is tested in-process as well as
through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from setara.core import QUEUED, SETTLED
from setara.core.network import Network
from setara.node import Node
from setara.node.usecases import Refused, fund
from tests.conftest import T0_MS, run_cli
from tests.test_cli_strict import cli_db, refused, state  # noqa: F401  # cli_db is a fixture
from tests.test_store_backends import kind, make_url, url  # noqa: F401  # fixtures: SQLite and PostgreSQL

FUND = ("fund", "--member", "BANK_ID1", "--currency", "IDR", "--amount", "10.00", "--id", "f1")


def test_cli_retry_with_the_same_content_prints_the_first_answer(cli_db: Path) -> None:  # noqa: F811
    db = str(cli_db)
    first = run_cli(*FUND, "--db", db)
    assert first.stdout.decode().startswith("f1 BANK_ID1 IDR ")
    after_first = state(cli_db)
    # A later movement changes the balance; the retry still answers what the first one did.
    run_cli("fund", "--member", "BANK_ID1", "--currency", "IDR", "--amount", "5.00", "--db", db)
    before = state(cli_db)
    again = run_cli(*FUND, "--db", db)
    assert (again.returncode, again.stdout, again.stderr) == (0, first.stdout, first.stderr)
    assert state(cli_db) == before != after_first  # nothing posted by the retry


@pytest.mark.parametrize(("change", "option"), [
    (("--amount", "20.00"), "--amount"),
    (("--member", "BANK_ID2"), "--member"),
    (("--currency", "THB"), "--currency"),
])
def test_cli_same_id_with_other_content_is_refused(cli_db: Path, change: tuple[str, str],  # noqa: F811
                                                    option: str) -> None:
    db = str(cli_db)
    run_cli(*FUND, "--db", db)
    before = state(cli_db)
    args = list(FUND)
    args[args.index(change[0]) + 1] = change[1]
    err = refused(run_cli(*args, "--db", db, check=False), f"{option}: funding id f1 already used",
                  "fund BANK_ID1 10.00 IDR")
    assert change[1] in err
    assert state(cli_db) == before


def test_cli_withdraw_under_a_funding_id_is_refused(cli_db: Path) -> None:  # noqa: F811
    db = str(cli_db)
    run_cli(*FUND, "--db", db)
    before = state(cli_db)
    refused(run_cli("withdraw", *FUND[1:], "--db", db, check=False), "--id: funding id f1 already used",
            "not withdraw BANK_ID1 10.00 IDR")
    assert state(cli_db) == before


def test_cli_withdraw_retry_answers_even_when_the_money_is_gone(cli_db: Path) -> None:  # noqa: F811
    """The retry is answered from the record, not re-checked against today's balance."""
    db = str(cli_db)
    w = ("withdraw", "--member", "BANK_TH1", "--currency", "THB", "--amount", "50000000.00", "--id", "w1")
    first = run_cli(*w, "--db", db)
    assert first.stdout == b"w1 BANK_TH1 THB 0.00\n"
    before = state(cli_db)
    assert run_cli(*w, "--db", db).stdout == first.stdout
    assert state(cli_db) == before
    refused(run_cli("withdraw", *w[1:-1], "w2", "--db", db, check=False), "--amount", "has only 0.00 THB")


def test_cli_funding_id_must_be_url_safe(cli_db: Path) -> None:  # noqa: F811
    before = state(cli_db)
    refused(run_cli(*FUND[:-1], "a/b?c", "--db", str(cli_db), check=False), "--id: funding id a/b?c must be")
    assert state(cli_db) == before


def test_use_case_answers_the_balance_the_funding_left_across_restarts(url: str, network: Network  # noqa: F811
                                                                       ) -> None:
    """A funding that releases a queued payment answers the balance right after its own posting
    (the payment settles in the same command), the same on a retry after the node reopened; on
    SQLite and PostgreSQL."""
    Node.create(url, network, T0_MS).close()
    db = url
    with Node.open(db, write=True) as node:
        line = {"id": "p1", "debtor": "BANK_ID3", "creditor": "BANK_ID1", "currency": "THB",
                "amount": "600000.00"}
        acks = [a for chunk in node.submit_lines([json.dumps(line).encode()], clock=lambda: T0_MS + 1)
                for a in chunk]
        assert [a.status for a in acks] == [QUEUED]
        res = fund(node, "BANK_ID3", "THB", 20_000_000, fund_id="f-thb", clock=lambda: T0_MS + 2)
        assert node.engine.status("p1") == SETTLED
        assert res.balance_minor == 70_000_000  # 500,000.00 + 200,000.00, before p1 took 600,000.00
        assert node.engine.ledger.balance(("BANK_ID3", "THB")) == 10_000_000
        hash_before = node.engine.state_hash()
    with Node.open(db, write=True) as node:
        blocks = node.block_seq
        assert fund(node, "BANK_ID3", "THB", 20_000_000, fund_id="f-thb") == res
        assert node.block_seq == blocks and node.engine.state_hash() == hash_before
        with pytest.raises(Refused) as e:
            fund(node, "BANK_ID3", "THB", 20_000_001, fund_id="f-thb")
        assert (e.value.kind, e.value.field) == ("conflict", "amount")
        assert "f-thb" in str(e.value) and "200000.00 THB" in str(e.value)
        with pytest.raises(Refused) as e:
            fund(node, "BANK_ID3", "THB", 20_000_000, withdraw=True, fund_id="f-thb")
        assert e.value.field == "id"
        assert node.block_seq == blocks and node.engine.state_hash() == hash_before
