"""Property-based bad input against every CLI command and every API operation (issue #15, "make it
systematic").

Every command of the Typer app and every operation of the OpenAPI document has a case here that
generates bad input with Hypothesis; a command or an operation without one fails
`test_every_*_has_a_bad_input_case`, so a new one cannot be added without saying how it refuses.
Each generated input must be refused:

- CLI: exit 2, nothing on stdout, exactly one line on stderr (`error: ...`) naming the option, the
  argument or the value; no traceback;
- API: a 4xx `application/problem+json` answer whose `field` names the parameter or body field;
- no partial write: the network's verified state hash, its block head and its side tables (API
  keys, list versions) are unchanged, no file or database is created where the input pointed;
- `verify` passes afterwards (the fingerprint is taken by `verify_store`).

Commands run in process through `setara.cli.main.main` (the real entry point, with its one-line
failure handling) and the API through FastAPI's TestClient, with few examples each, so the whole
file takes well under a minute.
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import string
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from setara.api import create_app
from setara.api.keys import issue_key
from setara.cli.common import one_line
from setara.cli.main import app as cli_app
from setara.cli.main import main
from setara.compliance import SOURCES
from setara.core.instructions import payment_id_problem
from setara.core.network import MEMBER_KEYS, example_toml, load_network
from setara.node import Node
from setara.node.verify import verify_store
from setara.store import open_store
from tests.conftest import T0_MS

EXAMPLES = 8
PROPS = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                 suppress_health_check=list(HealthCheck))

NET = load_network(example_toml())
MEMBERS = frozenset(NET.members)
CURRENCIES = frozenset(NET.currencies)

# What a shell can pass in argv: any text without NUL. Control characters, markup and non-ASCII
# are in, so a message must still come out as one line, printed as written.
_ARG_CHARS = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
_TRICKY = st.sampled_from(["a\nb", "[bold]x[/bold]", "[[add_member]]", "a\rb", "\x1b[31mred", "a\u2028b", "é", "٣",
                           " ", "", "x" * 300, "../..", "a/b?c#d%2F", "1e400", "NaN", "-1", "0", "1.001", "١٢"])
# Short text over characters that break naive output: line breaks, escapes, markup, digits.
_SPECIAL = st.text(st.sampled_from("\n\r\t\x1b\x7f\x85\u2028[]/.:-_~ 0123456789eéZ٣"), min_size=1, max_size=8)
TEXT = st.one_of(_TRICKY, _SPECIAL, st.text(_ARG_CHARS, max_size=24))


def not_in(values: frozenset[str]) -> st.SearchStrategy[str]:
    return TEXT.filter(lambda s: s not in values)


def _not_amount(s: str) -> bool:
    """Not a positive decimal string with at most 2 decimals (the example network's IDR)."""
    head, dot, tail = s.partition(".")
    ok = head.isascii() and head.isdigit() and (not dot or (tail.isascii() and tail.isdigit() and len(tail) <= 2))
    return not ok or int(head or "0") == 0 == int(tail or "0")


BAD_AMOUNT = TEXT.filter(_not_amount)
BAD_ID = TEXT.filter(lambda s: payment_id_problem(s) is not None)
UNKNOWN_ID = st.from_regex(r"[a-z][a-z0-9]{0,20}", fullmatch=True).map(lambda s: f"nope-{s}")
LIST_SOURCES = frozenset(SOURCES)
BAD_FORMAT = not_in(frozenset({"csv", "jsonl", "json", "camt053"}))
FILE_NAME = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)


def outside(low: int, high: int) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1)).filter(
        lambda n: -(10**18) < n < 10**18)


# ====================================================================== the CLI, in process


@dataclass(frozen=True)
class Run:
    code: int
    stdout: bytes
    stderr: str


def cli(*args: str) -> Run:
    """`setara ARGS` through the real entry point, stdin empty, output captured."""
    out_b, err_b = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(out_b, encoding="utf-8", errors="backslashreplace", write_through=True)
    stderr = io.TextIOWrapper(err_b, encoding="utf-8", errors="backslashreplace", write_through=True)
    stdin = io.TextIOWrapper(io.BytesIO(b""), encoding="utf-8")
    saved = sys.argv, sys.stdout, sys.stderr, sys.stdin
    sys.argv, sys.stdout, sys.stderr, sys.stdin = ["setara", *args], stdout, stderr, stdin
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv, sys.stdout, sys.stderr, sys.stdin = saved
    return Run(code, out_b.getvalue(), err_b.getvalue().decode("utf-8", "replace"))


def fingerprint(db: str) -> tuple[Any, ...]:
    """What must not move on a refusal: the verified state hash (verify passes, or this raises),
    the block head, and the side tables a command may write (API keys, list versions)."""
    store = open_store(db)
    try:
        report = verify_store(store)
        head = store.head()
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
        side = tuple(c.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("api_keys", "list_versions"))
    return report.state_hash, head, side


def leaf_commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if hasattr(group, "commands"):
        for name, sub in group.commands.items():
            yield from leaf_commands(sub, (*path, name))
    else:
        yield path


ALL_COMMANDS = sorted(leaf_commands(typer.main.get_command(cli_app)))


@dataclass(frozen=True)
class Env:
    """A network with a payment, a funding and an API key in it, and a scratch directory; every
    case runs against it, so a case that writes anything breaks the fingerprint of the next."""

    db: str
    dir: Path
    network_toml: Path
    a_file: Path  # exists, is not a directory, holds nothing useful


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    d = tmp_path_factory.mktemp("props")
    db = str(d / "setara.db")
    with Node.create(db, NET, T0_MS) as node:
        lines = [b'{"id":"p1","debtor":"BANK_ID1","creditor":"BANK_ID2","currency":"IDR","amount":"10.00"}']
        for _ in node.submit_lines(lines, clock=lambda: T0_MS + 1):
            pass
    assert cli("fund", "--member", "BANK_ID1", "--currency", "IDR", "--amount", "1.00", "--id", "f1",
               "--db", db).code == 0
    store = open_store(db)
    issue_key(store, "operator", None)
    store.close()
    net = d / "network.toml"
    net.write_text(example_toml())
    a_file = d / "a_file"
    a_file.write_text("not json, not xml\n")
    return Env(db, d, net, a_file)


# A case: Hypothesis draws the bad value; `build` turns it into argv, the text the one line must
# contain, and the paths that must not exist afterwards.
Built = tuple[list[str], str, list[Path]]


@dataclass(frozen=True)
class Case:
    value: st.SearchStrategy[Any]
    build: Callable[[Env, Any], Built]


def opt(name: str, value: str) -> str:
    return f"{name}={value}"  # never read as another option, whatever the value


def with_db(e: Env, *args: str) -> list[str]:
    return [*args, "--db", e.db]


def missing_db(*cmd: str) -> Case:
    """Commands whose only input is the database: a --db where none is."""
    def build(e: Env, name: str) -> Built:
        path = e.dir / f"{name}.db"
        return [*cmd, opt("--db", str(path))], f"no Setara database at {path}", [path]
    return Case(FILE_NAME, build)


def one_of(*cases: Case) -> Case:
    """Any of these cases, chosen by Hypothesis."""
    strategy = st.one_of(*(st.tuples(st.just(i), c.value) for i, c in enumerate(cases)))
    return Case(strategy, lambda e, v: cases[v[0]].build(e, v[1]))


def simple(value: st.SearchStrategy[Any], make: Callable[[Env, Any], list[str]], needle: Callable[[Any], str],
           created: Callable[[Env, Any], list[Path]] | None = None) -> Case:
    return Case(value, lambda e, v: (make(e, v), needle(v), created(e, v) if created else []))


def bad_toml(e: Env, key: str, where: str) -> Path:
    """The example network (or an empty change file) with one unknown key in `where`."""
    path = e.dir / "bad.toml"
    if where == "members":
        text = example_toml().replace('[[members]]\nid = "BANK_ID1"', f'[[members]]\n{key} = "x"\nid = "BANK_ID1"', 1)
    else:
        text = f'{key} = "x"\n' + (example_toml() if where == "network" else "")
    path.write_text(text)
    return path


TOML_KEY = st.from_regex(r"[a-z][a-z_]{0,14}", fullmatch=True).filter(
    lambda k: k not in MEMBER_KEYS and k not in {"currencies", "members", "accounts", "liquidity_saving",
                                                  "comprehensive_sanction_countries", "name", "nodes",
                                                  "finality_quorum", "add_member", "credit_line"})


def _fund_cases(cmd: str) -> Case:
    base = {"--member": "BANK_ID1", "--currency": "IDR", "--amount": "1.00"}

    def args(e: Env, field: str, value: str, extra: tuple[str, ...] = ()) -> list[str]:
        return with_db(e, cmd, *(opt(k, value if k == field else v) for k, v in base.items()), *extra)

    return one_of(
        simple(not_in(MEMBERS), lambda e, v: args(e, "--member", v), lambda v: "--member"),
        simple(not_in(CURRENCIES), lambda e, v: args(e, "--currency", v), lambda v: "--currency"),
        simple(BAD_AMOUNT, lambda e, v: args(e, "--amount", v), lambda v: "--amount"),
        simple(BAD_ID, lambda e, v: args(e, "--amount", "1.00", (opt("--id", v),)), lambda v: "--id"),
        # f1 funded 1.00 into BANK_ID1 IDR: any other amount under that id is refused
        simple(st.integers(2, 10**6), lambda e, n: args(e, "--amount", f"{n}.00", ("--id=f1",)),
               lambda v: "funding id f1 already used"),
    )


def _review(cmd: str) -> Case:
    return one_of(
        simple(UNKNOWN_ID, lambda e, v: with_db(e, "holds", cmd, v, "--officer=o", "--note=n"),
               lambda v: f"unknown payment {v}"),
        simple(st.sampled_from(["", " ", "\t", "\n"]), lambda e, v: with_db(e, "holds", cmd, "p1", opt("--officer", v),
                                                                          "--note=n"), lambda v: "--officer"),
        simple(st.sampled_from(["", " ", "\t"]), lambda e, v: with_db(e, "holds", cmd, "p1", "--officer=o",
                                                                    opt("--note", v)), lambda v: "--note"),
    )


def _fx(cmd: str, extra: tuple[str, ...]) -> Case:
    base = {"--provider": "FX_MERDEKA", "--pair": "IDR/THB", "--rate": "0.0021"}

    def args(e: Env, field: str, value: str) -> list[str]:
        return with_db(e, "fx", cmd, *(opt(k, value if k == field else v) for k, v in base.items()), *extra)

    bad_rate = TEXT.filter(lambda s: not (s.replace(".", "", 1).isascii() and s.replace(".", "", 1).isdigit()
                                          and s[:1] != "." and s[-1:] != "." and float(s) > 0))
    return one_of(
        simple(not_in(MEMBERS), lambda e, v: args(e, "--provider", v), lambda v: "--provider"),
        simple(TEXT.filter(lambda s: s.count("/") != 1 or not all(p in CURRENCIES for p in s.split("/"))),
               lambda e, v: args(e, "--pair", v), lambda v: "--pair"),
        simple(bad_rate, lambda e, v: args(e, "--rate", v), lambda v: "--rate"),
    )


def _keygen(e: Env, _: Any) -> Built:
    return ["node", "keygen", opt("--out", str(e.a_file))], "exists", []


CLI_CASES: dict[tuple[str, ...], Case] = {
    ("init",): one_of(
        simple(TOML_KEY, lambda e, k: ["init", opt("--network", str(bad_toml(e, k, "members"))),
                                       opt("--db", str(e.dir / "new.db"))],
               lambda k: f"members[0]: unknown key {k}", lambda e, k: [e.dir / "new.db"]),
        simple(TOML_KEY, lambda e, k: ["init", opt("--network", str(bad_toml(e, k, "network"))),
                                       opt("--db", str(e.dir / "new.db"))],
               lambda k: f"unknown key {k}", lambda e, k: [e.dir / "new.db"]),
        # init where a network already is
        simple(st.just(0), lambda e, _: ["init", opt("--network", str(e.network_toml)), opt("--db", e.db)],
               lambda _: "already holds a network"),
    ),
    ("fund",): _fund_cases("fund"),
    ("withdraw",): _fund_cases("withdraw"),
    ("submit",): one_of(
        simple(outside(1, 50_000), lambda e, n: with_db(e, "submit", str(e.a_file), opt("--batch", str(n))),
               lambda n: "--batch"),
        simple(st.just(0), lambda e, _: with_db(e, "submit", str(e.a_file), opt("--replies", str(e.a_file))),
               lambda _: "--replies"),
        simple(FILE_NAME, lambda e, n: with_db(e, "submit", str(e.dir / f"{n}.jsonl")), lambda n: "cannot read"),
    ),
    ("cancel",): simple(UNKNOWN_ID, lambda e, v: with_db(e, "cancel", v), lambda v: f"unknown payment {v}"),
    ("statement",): one_of(
        simple(not_in(MEMBERS), lambda e, v: with_db(e, "statement", opt("--member", v), "--currency=IDR"),
               lambda v: "--member"),
        simple(BAD_FORMAT, lambda e, v: with_db(e, "statement", "--member=BANK_ID1", "--currency=IDR",
                                                opt("--format", v)), lambda v: "--format"),
    ),
    ("notify",): one_of(
        simple(st.just(0), lambda e, _: with_db(e, "notify", opt("--out", str(e.a_file))), lambda _: "--out"),
        simple(not_in(MEMBERS), lambda e, v: with_db(e, "notify", opt("--out", str(e.dir / "n_out")),
                                                     opt("--member", v)), lambda v: "--member",
               lambda e, v: [e.dir / "n_out"]),
    ),
    ("queue",): simple(BAD_FORMAT, lambda e, v: with_db(e, "queue", opt("--format", v)), lambda v: "--format"),
    ("settle",): simple(FILE_NAME, lambda e, n: ["settle", opt("--balances", str(e.dir / f"{n}.csv")),
                                                 opt("--queue", str(e.a_file))], lambda n: f"{n}.csv"),
    ("verify",): missing_db("verify"),
    ("screen",): one_of(
        simple(not_in(LIST_SOURCES),
               lambda e, v: with_db(e, "screen", str(e.a_file), opt("--list", v)), lambda v: "--list"),
        simple(FILE_NAME, lambda e, n: with_db(e, "screen", str(e.dir / f"{n}.txt")), lambda n: "cannot read"),
    ),
    ("bench",): simple(outside(1_000, 100_000_000), lambda e, n: ["bench", opt("--n", str(n))], lambda n: "--n"),
    ("serve",): one_of(
        simple(outside(1, 65_535), lambda e, n: with_db(e, "serve", opt("--port", str(n))), lambda n: "--port"),
        simple(not_in(frozenset({"critical", "error", "warning", "info", "debug", "trace"})),
               lambda e, v: with_db(e, "serve", opt("--log-level", v)), lambda v: "--log-level"),
    ),
    ("demo",): simple(outside(10, 1_000_000), lambda e, n: ["demo", opt("--payments", str(n)),
                                                            opt("--dir", str(e.dir / "demo"))],
                      lambda n: "--payments", lambda e, n: [e.dir / "demo"]),
    ("simulate",): simple(TOML_KEY, lambda e, k: ["simulate", str(bad_toml(e, k, "change")),
                                                  opt("--out", str(e.dir / "sim"))],
                          lambda k: k, lambda e, k: [e.dir / "sim"]),
    ("follow",): simple(not_in(MEMBERS), lambda e, v: ["follow", opt("--member", v),
                                                       opt("--network", str(e.network_toml)),
                                                       opt("--db", str(e.dir / "member.db"))],
                        lambda v: "--replicate", lambda e, v: [e.dir / "member.db"]),
    ("simtest",): one_of(
        simple(outside(1, 1_000_000), lambda e, n: ["simtest", opt("--seeds", str(n))], lambda n: "--seeds"),
        simple(outside(1, 1_000), lambda e, n: ["simtest", opt("--steps", str(n))], lambda n: "--steps"),
        simple(st.from_regex(r"[a-z]{1,10}", fullmatch=True).filter(lambda s: s not in {"all", "none", "crash",
               "loss", "dup", "delay", "reorder", "corrupt", "replica", "partition"}),
               lambda e, v: ["simtest", opt("--faults", v)], lambda v: "--faults"),
    ),
    ("network", "example"): simple(FILE_NAME, lambda e, v: ["network", "example", v],
                                   lambda v: "unexpected extra argument"),
    ("network", "show"): missing_db("network", "show"),
    ("network", "apply"): simple(TOML_KEY, lambda e, k: with_db(e, "network", "apply",
                                                                str(bad_toml(e, k, "change"))),
                                 lambda k: f"unknown key {k}"),
    ("member", "suspend"): simple(not_in(MEMBERS).filter(lambda s: not s.startswith("-")),
                                  lambda e, v: with_db(e, "member", "suspend", v), lambda v: "unknown member"),
    ("member", "resume"): simple(not_in(MEMBERS).filter(lambda s: not s.startswith("-")),
                                 lambda e, v: with_db(e, "member", "resume", v), lambda v: "unknown member"),
    ("day", "close"): missing_db("day", "close"),
    ("day", "open"): one_of(missing_db("day", "open"),
                            simple(st.just(0), lambda e, _: with_db(e, "day", "open"), lambda _: "already open")),
    ("cycle", "close"): simple(not_in(CURRENCIES), lambda e, v: with_db(e, "cycle", "close", opt("--currency", v)),
                               lambda v: "--currency"),
    ("lsm", "run"): simple(not_in(frozenset({"optimise", "heuristic", "lp-round", "milp", "all-or-nothing", "partial",
                                             "bilateral", "fifo"})),
                           lambda e, v: with_db(e, "lsm", "run", opt("--algorithm", v)), lambda v: "--algorithm"),
    ("export", "payments"): simple(BAD_FORMAT, lambda e, v: with_db(e, "export", "payments", opt("--format", v)),
                                   lambda v: "--format"),
    ("export", "balances"): simple(BAD_FORMAT, lambda e, v: with_db(e, "export", "balances", opt("--format", v)),
                                   lambda v: "--format"),
    ("export", "journal"): simple(BAD_FORMAT, lambda e, v: with_db(e, "export", "journal", opt("--format", v)),
                                  lambda v: "--format"),
    ("db", "upgrade"): missing_db("db", "upgrade"),
    ("db", "party-key"): one_of(
        missing_db("db", "party-key", "--out=never-written.key"),
        simple(st.just(0), lambda e, _: with_db(e, "db", "party-key", opt("--out", str(e.a_file))),
               lambda _: "--out"),
    ),
    ("db", "copy"): one_of(
        simple(FILE_NAME, lambda e, n: ["db", "copy", opt("--from", str(e.dir / f"{n}.db")),
                                        opt("--to", str(e.dir / "copy.db"))],
               lambda n: "no Setara database at ", lambda e, n: [e.dir / "copy.db", e.dir / f"{n}.db"]),
        simple(st.just(0), lambda e, _: ["db", "copy", opt("--from", e.db), opt("--to", e.db)], lambda _: "--to"),
    ),
    ("fx", "rate"): _fx("rate", ()),
    ("fx", "quote"): one_of(_fx("quote", ("--valid-for=60",)),
                            simple(outside(1, 31_622_400), lambda e, n: with_db(
                                e, "fx", "quote", "--provider=FX_MERDEKA", "--pair=IDR/THB", "--rate=0.0021",
                                opt("--valid-for", str(n))), lambda n: "--valid-for")),
    ("fx", "rates"): missing_db("fx", "rates"),
    ("fx", "positions"): simple(BAD_FORMAT, lambda e, v: with_db(e, "fx", "positions", opt("--format", v)),
                                lambda v: "--format"),
    ("lists", "import"): simple(not_in(LIST_SOURCES),
                                lambda e, v: with_db(e, "lists", "import", str(e.a_file), opt("--source", v)),
                                lambda v: "--source"),
    ("lists", "update"): simple(not_in(LIST_SOURCES),
                                lambda e, v: with_db(e, "lists", "update", opt("--source", v)),
                                lambda v: "--source"),
    ("lists", "status"): missing_db("lists", "status"),
    ("holds", "list"): missing_db("holds", "list"),
    ("holds", "release"): _review("release"),
    ("holds", "reject"): _review("reject"),
    ("keys", "issue"): one_of(
        simple(not_in(MEMBERS), lambda e, v: with_db(e, "keys", "issue", opt("--member", v)), lambda v: "--member"),
        simple(not_in(frozenset({"compliance", "auditor"})), lambda e, v: with_db(e, "keys", "issue", opt("--role", v)),
               lambda v: "--role"),
    ),
    ("keys", "revoke"): simple(UNKNOWN_ID, lambda e, v: with_db(e, "keys", "revoke", v), lambda v: "no API key"),
    ("keys", "list"): missing_db("keys", "list"),
    ("node", "keygen"): Case(st.just(0), _keygen),
    ("checkpoint", "show"): missing_db("checkpoint", "show"),
    ("checkpoint", "verify"): simple(FILE_NAME, lambda e, n: with_db(e, "checkpoint", "verify",
                                                                     str(e.dir / f"{n}.json")),
                                     lambda n: "cannot read"),
    ("checkpoint", "conflicts"): missing_db("checkpoint", "conflicts"),
    ("checkpoint", "snapshot"): one_of(
        missing_db("checkpoint", "snapshot", "--out=-"),
        simple(st.just(0), lambda e, _: with_db(e, "checkpoint", "snapshot", opt("--out", str(e.a_file))),
               lambda _: "--out"),
    ),
}


def test_every_cli_command_has_a_bad_input_case() -> None:
    assert len(ALL_COMMANDS) >= 40
    assert sorted(CLI_CASES) == ALL_COMMANDS, {"without a case": sorted(set(ALL_COMMANDS) - set(CLI_CASES)),
                                               "no such command": sorted(set(CLI_CASES) - set(ALL_COMMANDS))}


def assert_refused(run: Run, needle: str) -> None:
    assert run.code == 2, (run.code, run.stderr)
    assert run.stdout == b"", run.stdout
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr, run.stderr
    assert run.stderr.startswith("error: ") and run.stderr.endswith("\n"), run.stderr
    assert len(run.stderr.splitlines()) == 1 and "\x1b" not in run.stderr, run.stderr
    assert one_line(needle) in run.stderr, (needle, run.stderr)


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=" ".join)
def test_cli_bad_input_is_refused_without_a_write(env: Env, command: tuple[str, ...]) -> None:
    case = CLI_CASES[command]
    before = fingerprint(env.db)

    @PROPS
    @given(value=case.value)
    def check(value: Any) -> None:
        args, needle, created = case.build(env, value)
        assert_refused(cli(*args), needle)
        for path in created:
            assert not path.exists(), f"{path} was created by a refused `setara {' '.join(args)}`"
        assert fingerprint(env.db) == before

    check()


@pytest.mark.parametrize("value", ["a\nb", "a\r\nb", "\x1b[31mred", "a\u2028b", "a\x85b"])
def test_control_characters_in_user_data_stay_escaped_on_one_line(env: Env, value: str) -> None:
    """Regression: `--member 'a<newline>b'` printed its refusal on two lines (found by the cases above)."""
    for args in (("fund", opt("--member", value), "--currency=IDR", "--amount=1"), ("cancel", value),
                 ("keys", "revoke", value), ("member", "suspend", value)):
        run = cli(*with_db(env, *args))
        assert_refused(run, one_line(value))
    run = cli("keys", "list", opt("--db", str(env.dir / value)))  # a message of the `keys` commands' own _fail
    assert_refused(run, one_line(value))


# ====================================================================== the API, in process


@dataclass(frozen=True)
class ApiEnv:
    client: TestClient
    db: str
    keys: dict[str, str]  # role -> key
    spec: dict[str, Any]


@pytest.fixture(scope="module")
def api_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    db = str(tmp_path_factory.mktemp("api_props") / "s.db")
    with Node.create(db, NET, T0_MS) as node:
        lines = [b'{"id":"p1","debtor":"BANK_ID1","creditor":"BANK_ID2","currency":"IDR","amount":"10.00"}']
        for _ in node.submit_lines(lines, clock=lambda: T0_MS + 1):
            pass
    store = open_store(db)
    keys = {"operator": issue_key(store, "operator", None)[1], "member": issue_key(store, "member", "BANK_ID1")[1],
            "compliance": issue_key(store, "compliance", None)[1]}
    store.close()
    app = create_app(db)
    with TestClient(app) as client:
        yield ApiEnv(client, db, keys, app.openapi())


def api_fingerprint(db: str) -> tuple[Any, ...]:
    store = open_store(db)
    try:
        return verify_store(store).state_hash, store.head()
    finally:
        store.close()


# A request: method, URL, role of the key (None: the Authorization header is in `headers`),
# extra headers, body bytes; and the field the problem answer must name.
@dataclass(frozen=True)
class Req:
    method: str
    url: str
    role: str | None
    field: str
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    iso: bool = False  # ISO 20022 refuses in its own protocol: pacs.002 RJCT with a reason code


@dataclass(frozen=True)
class ApiCase:
    value: st.SearchStrategy[Any]
    build: Callable[[Any], Req]


def api_one_of(*cases: ApiCase) -> ApiCase:
    strategy = st.one_of(*(st.tuples(st.just(i), c.value) for i, c in enumerate(cases)))
    return ApiCase(strategy, lambda v: cases[v[0]].build(v[1]))


QUERY_NAME = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True)


def unknown_query(method: str, path: str, role: str | None, known: frozenset[str] = frozenset(), *,
                  body: bytes | None = None) -> ApiCase:
    """A query parameter the operation does not take (a typo of one it does, say)."""
    return ApiCase(QUERY_NAME.filter(lambda n: n not in known),
                   lambda n: Req(method, f"{path}?{n}=1", role, n, body))


def bad_key() -> ApiCase:
    token = st.text(st.sampled_from(string.ascii_letters + string.digits + "._-"), max_size=40)
    return ApiCase(token, lambda t: Req("GET", "/v1/whoami", None, "Authorization",
                                        headers=(("Authorization", f"Bearer {t}"),)))


def payment_body(**change: Any) -> bytes:
    obj = {"id": "api-1", "debtor": "BANK_ID1", "creditor": "BANK_ID2", "currency": "IDR", "amount": "1.00"}
    obj.update(change)
    return json.dumps(obj).encode()


BAD_BODY_FIELD = st.one_of(
    st.tuples(st.just("amount"), st.one_of(st.integers(), st.floats(allow_nan=False), BAD_AMOUNT)),
    st.tuples(st.just("id"), BAD_ID),
    st.tuples(st.just("creditor"), not_in(MEMBERS)),
    st.tuples(st.just("currency"), not_in(CURRENCIES)),
    st.tuples(QUERY_NAME.filter(lambda k: k not in {"id", "debtor", "creditor", "currency", "amount", "priority",
                                                    "to_currency", "quote_id", "uetr", "end_to_end_id", "msg_id"}
                                and not k.endswith(("_name", "_country", "_address", "_names", "_countries"))),
              st.just("x")),
)
def _digits(s: str) -> bool:
    return s.strip().isascii() and s.strip().lstrip("+").isdigit()


def bad_limit(low: int) -> st.SearchStrategy[str]:
    """Out of range, or not a number (pydantic reads " 5" and "+5" as 5: the same number, so not bad)."""
    return st.one_of(outside(low, 1000).map(str), TEXT.filter(lambda s: not _digits(s) or not low <= int(s) <= 1000))


def _query(path: str, name: str, role: str, extra: str = "", low: int = 1) -> ApiCase:
    from urllib.parse import quote

    return ApiCase(bad_limit(low), lambda v: Req("GET", f"{path}?{extra}{name}={quote(v)}", role, name))


def _path_id(method: str, template: str, role: str, field: str, suffix: str = "", body: bytes | None = None
             ) -> ApiCase:
    return ApiCase(UNKNOWN_ID, lambda v: Req(method, template.format(v) + suffix, role, field, body))


_NOTE = json.dumps({"note": "checked"}).encode()

API_CASES: dict[tuple[str, str], ApiCase] = {
    ("GET", "/healthz"): unknown_query("GET", "/healthz", None),
    ("GET", "/metrics"): unknown_query("GET", "/metrics", "operator"),
    ("GET", "/v1/whoami"): api_one_of(bad_key(), unknown_query("GET", "/v1/whoami", "member")),
    ("POST", "/v1/payments"): api_one_of(
        ApiCase(BAD_BODY_FIELD, lambda kv: Req("POST", "/v1/payments", "member", kv[0],
                                               payment_body(**{kv[0]: kv[1]}))),
        # the same key twice: the first value is what a signer saw
        ApiCase(st.sampled_from(["amount", "creditor", "id"]), lambda k: Req(
            "POST", "/v1/payments", "member", k, payment_body()[:-1] + f', "{k}": "x"}}'.encode()))),
    ("GET", "/v1/payments"): api_one_of(
        _query("/v1/payments", "limit", "member"),
        ApiCase(not_in(frozenset({"SETTLED", "QUEUED", "HELD", "REJECTED", "CANCELLED"})).map(
            lambda s: s.encode("utf-8", "replace").hex()), lambda v: Req("GET", f"/v1/payments?status=x{v}",
                                                                         "member", "status")),
        unknown_query("GET", "/v1/payments", "member", frozenset({"status", "after", "limit", "member"})),
        ApiCase(st.from_regex(r"[A-Z0-9_]{1,20}", fullmatch=True).filter(lambda m: m not in MEMBERS),
                lambda m: Req("GET", f"/v1/payments?member={m}", "operator", "member"))),
    ("POST", "/v1/payments/batch"): ApiCase(
        st.one_of(st.integers(), st.text(max_size=8), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)),
        lambda v: Req("POST", "/v1/payments/batch", "member", "body", json.dumps(v).encode())),
    ("GET", "/v1/payments/{payment_id}"): _path_id("GET", "/v1/payments/{}", "member", "id"),
    ("POST", "/v1/payments/{payment_id}/cancel"): _path_id("POST", "/v1/payments/{}", "member", "id", "/cancel"),
    ("GET", "/v1/accounts"): api_one_of(
        ApiCase(st.integers(65, 200), lambda n: Req("GET", f"/v1/accounts?member={'M' * n}", "operator", "member")),
        ApiCase(st.from_regex(r"[A-Z0-9_]{1,20}", fullmatch=True).filter(lambda m: m not in MEMBERS),
                lambda m: Req("GET", f"/v1/accounts?member={m}", "operator", "member")),
        unknown_query("GET", "/v1/accounts", "operator", frozenset({"member"}))),
    ("GET", "/v1/statements/{currency}"): api_one_of(
        ApiCase(st.from_regex(r"[A-Z]{3}", fullmatch=True).filter(lambda c: c not in CURRENCIES),
                lambda c: Req("GET", f"/v1/statements/{c}", "member", "currency")),
        _query("/v1/statements/IDR", "limit", "member"),
        _query("/v1/statements/IDR", "page_size", "member", "format=camt053&")),
    ("POST", "/v1/iso20022"): api_one_of(
        ApiCase(st.sampled_from([b"", b" ", b"\n\t"]),
                lambda b: Req("POST", "/v1/iso20022", "member", "body", b, (("Content-Type", "application/xml"),))),
        ApiCase(st.one_of(st.binary(min_size=1, max_size=64).filter(bytes.strip), st.just(b"<Document/>"),
                          st.just(b"<a><b></a>"),
                          st.just(b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "x">]><d>&e;</d>')),
                lambda b: Req("POST", "/v1/iso20022", "member", "body", b, (("Content-Type", "application/xml"),),
                              iso=True))),
    ("GET", "/v1/fx/rates"): unknown_query("GET", "/v1/fx/rates", "member"),
    ("GET", "/v1/admin/queue"): api_one_of(
        _query("/v1/admin/queue", "limit", "operator", low=0),  # 0: the counts alone
        ApiCase(st.from_regex(r"[A-Z]{1,3}", fullmatch=True).filter(lambda c: c not in CURRENCIES),
                lambda c: Req("GET", f"/v1/admin/queue?currency={c}", "operator", "currency"))),
    ("POST", "/v1/admin/cycles/{currency}/close"): ApiCase(
        st.from_regex(r"[A-Z]{3}", fullmatch=True).filter(lambda c: c not in CURRENCIES),
        lambda c: Req("POST", f"/v1/admin/cycles/{c}/close", "operator", "currency")),
    ("GET", "/v1/admin/members"): unknown_query("GET", "/v1/admin/members", "operator"),
    ("GET", "/v1/admin/holds"): _query("/v1/admin/holds", "limit", "compliance", low=0),
    ("POST", "/v1/admin/holds/{payment_id}/release"): api_one_of(
        _path_id("POST", "/v1/admin/holds/{}", "compliance", "id", "/release", _NOTE),
        ApiCase(st.sampled_from(["", " ", "\t", "x" * 5000]).map(lambda n: json.dumps({"note": n}).encode()),
                lambda b: Req("POST", "/v1/admin/holds/p1/release", "compliance", "note", b))),
    ("POST", "/v1/admin/holds/{payment_id}/reject"): api_one_of(
        _path_id("POST", "/v1/admin/holds/{}", "compliance", "id", "/reject", _NOTE),
        ApiCase(st.sampled_from(["", " ", "\t"]).map(lambda n: json.dumps({"note": n}).encode()),
                lambda b: Req("POST", "/v1/admin/holds/p1/reject", "compliance", "note", b))),
    ("GET", "/v1/admin/overview"): unknown_query("GET", "/v1/admin/overview", "operator"),
}


def _operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((m.upper(), path) for path, ops in spec["paths"].items() for m in ops)


def test_every_api_operation_has_a_bad_input_case(api_env: ApiEnv) -> None:
    ops = _operations(api_env.spec)
    assert len(ops) >= 15
    assert sorted(API_CASES) == ops, {"without a case": sorted(set(ops) - set(API_CASES)),
                                      "no such operation": sorted(set(API_CASES) - set(ops))}


def send(e: ApiEnv, r: Req) -> Any:
    headers = dict(r.headers)
    if r.role is not None:
        headers["Authorization"] = f"Bearer {e.keys[r.role]}"
    if r.body is not None:
        headers.setdefault("Content-Type", "application/json")
    return e.client.request(r.method, r.url, content=r.body, headers=headers)


@pytest.mark.parametrize("operation", sorted(API_CASES), ids=" ".join)
def test_api_bad_input_is_a_problem_naming_the_field(api_env: ApiEnv, operation: tuple[str, str]) -> None:
    case = API_CASES[operation]
    before = api_fingerprint(api_env.db)

    @PROPS
    @given(value=case.value)
    def check(value: Any) -> None:
        req = case.build(value)
        resp = send(api_env, req)
        if req.iso:  # a pacs.002 rejecting the whole message (FF01), which says why
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/xml"), resp
            assert b"<GrpSts>RJCT</GrpSts>" in resp.content and b"<Cd>FF01</Cd>" in resp.content, resp.text[:600]
            assert b"<AddtlInf>" in resp.content
            assert api_fingerprint(api_env.db) == before
            return
        assert 400 <= resp.status_code < 500, (req, resp.status_code, resp.text[:300])
        assert resp.headers["content-type"].startswith("application/problem+json"), (req, resp.headers)
        assert "Traceback" not in resp.text
        problem = resp.json()
        assert problem["status"] == resp.status_code and problem.get("field") == req.field, (req, problem)
        assert api_fingerprint(api_env.db) == before

    check()
