"""The scheme's static configuration: currencies, settlement agents, members and accounts.

A network is loaded from TOML once (`setara init`) and afterwards changes only through commands in
the log (add a member, change a credit line, suspend or resume), so every replica derives the same
network from the same log.
"""

from __future__ import annotations

import base64
import binascii
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

from setara.core.money import SUPPLY_MINOR_MAX, AmountError, Currency, format_amount, parse_amount

__all__ = [
    "Account",
    "CurrencyConfig",
    "Member",
    "Network",
    "NetworkError",
    "example_toml",
    "load_network",
    "parse_network",
    "parse_network_change",
]

MEMBERS_MAX = 10_000
CURRENCIES_MAX = 200
ROLES = frozenset({"member", "fx_provider"})
SETTLEMENT_MODES = ("rtgs", "cycles")
# The UN list binds every member; jurisdictions add theirs (issue 6 reads these names).
LIST_SOURCES = frozenset({"un-xml", "ofac-sdn-csv", "ofac-sdn-xml", "eu-xml", "uk-csv"})

# The keys each table of a network file (and of a `network apply` change file) may hold. Anything
# else is refused by name: a typo such as `credit_line` for `credit_lines` must not silently mean 0.
NETWORK_KEYS = frozenset({"name", "currencies", "members", "accounts", "comprehensive_sanction_countries",
                          "liquidity_saving", "operator_bic", "node", "finality"})
CURRENCY_KEYS = frozenset({"code", "minor_units", "agent", "agent_bic", "settlement", "max_amount"})
MEMBER_KEYS = frozenset({"id", "bic", "country", "name", "lei", "roles", "lists", "suspended", "opening",
                         "credit_lines", "net_debit_caps"})
ACCOUNT_KEYS = frozenset({"member", "currency", "opening_balance", "credit_line", "net_debit_cap"})
LSM_KEYS = frozenset({"on_entry", "periodic", "period_s"})
CHANGE_KEYS = frozenset({"add_member", "credit_line", "node"})
ADD_MEMBER_KEYS = MEMBER_KEYS | {"accounts"}
ADD_MEMBER_ACCOUNT_KEYS = ACCOUNT_KEYS - {"member"}  # the member is the one being added
CREDIT_LINE_KEYS = ACCOUNT_KEYS - {"opening_balance"}  # an existing account's opening is history

_MEMBER_ID_RE = re.compile(r"[A-Z0-9_]{1,16}")
_NODE_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BIC_RE = re.compile(r"[A-Z]{4}([A-Z]{2})[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_LEI_RE = re.compile(r"[A-Z0-9]{18}[0-9]{2}")
_ISO3166 = frozenset(
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR "
    "BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ "
    "EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW "
    "GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY "
    "KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV "
    "MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY "
    "QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG "
    "TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM "
    "ZW XK"
    .split()
)


class NetworkError(ValueError):
    """Invalid network configuration; the message names the offending key."""


@dataclass(frozen=True, slots=True)
class CurrencyConfig:
    currency: Currency
    agent: str  # settlement agent id (usually the central bank); holds the issuance account
    agent_bic: str
    settlement: str = "rtgs"  # "rtgs" or "cycles" (deferred net settlement, issue 3)
    max_amount_minor: int | None = None  # None: up to the currency's total supply

    @property
    def code(self) -> str:
        return self.currency.code


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    bic: str
    country: str
    name: str = ""
    lei: str | None = None
    roles: tuple[str, ...] = ("member",)
    lists: tuple[str, ...] = ("un-xml",)  # sanctions lists the member's jurisdiction applies
    suspended: bool = False

    @property
    def is_fx_provider(self) -> bool:
        return "fx_provider" in self.roles


@dataclass(frozen=True, slots=True)
class Account:
    member: str
    currency: str
    opening_minor: int = 0
    credit_line_minor: int = 0  # the floor is -credit_line
    net_debit_cap_minor: int | None = None  # deferred-net cycles: most a member may owe net


@dataclass(frozen=True, slots=True)
class LiquiditySaving:
    """When the liquidity-saving algorithms run (issue 3).

    on_entry runs inside the engine on every payment that would queue (cheap, deterministic);
    periodic runs from the shell (`serve`, the simulator) every period_s seconds and on demand
    (`setara lsm run`), its chosen set applied atomically by the engine.
    """

    on_entry: str = "bilateral"  # "bilateral" or "none"
    periodic: str = "optimise"  # a setara.liquidity algorithm, or "none"
    period_s: int = 60

    def to_config(self) -> dict[str, Any]:
        return {"on_entry": self.on_entry, "periodic": self.periodic, "period_s": self.period_s}


@dataclass(frozen=True, slots=True)
class NodeKey:
    """A node registered in the network: its Ed25519 public key (base64 of the 32 raw bytes), the
    member it belongs to (None: an operator's node), and whether it may sign blocks."""

    name: str
    public_key: str
    member: str | None = None
    sequencer: bool = False

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "public_key": self.public_key, "member": self.member,
                "sequencer": self.sequencer}


@dataclass(frozen=True)
class Network:
    name: str
    currencies: Mapping[str, CurrencyConfig]
    members: Mapping[str, Member]
    accounts: Mapping[tuple[str, str], Account]
    comprehensive_sanction_countries: tuple[str, ...] = ("KP",)
    bic_index: Mapping[str, str] = field(default_factory=dict)
    lsm: LiquiditySaving = field(default_factory=lambda: LiquiditySaving())
    nodes: Mapping[str, NodeKey] = field(default_factory=dict)
    finality_quorum: int | None = None  # None: floor(2M/3)+1 of the M member nodes
    # The operator's own BIC on its ISO 20022 messages; None for networks configured before it
    # existed (the messages then leave out the optional elements that would carry it).
    operator_bic: str | None = None

    def minor_units(self, code: str) -> int | None:
        c = self.currencies.get(code)
        return None if c is None else c.currency.minor_units

    def member_by_bic(self, bic: str) -> str | None:
        bic = bic.strip().upper()
        return self.bic_index.get(bic) or self.bic_index.get(bic[:8])

    def to_json(self) -> dict[str, Any]:
        """The public shape of `setara network show` (GUIDE §3)."""
        return {
            "name": self.name,
            "currencies": [
                {
                    "code": c.code,
                    "minor_units": c.currency.minor_units,
                    "agent": c.agent,
                    "agent_bic": c.agent_bic,
                    "settlement": c.settlement,
                    "max_amount": None
                    if c.max_amount_minor is None
                    else format_amount(c.max_amount_minor, c.currency.minor_units),
                }
                for c in self.currencies.values()
            ],
            "members": [
                {
                    "id": m.id,
                    "bic": m.bic,
                    "lei": m.lei,
                    "name": m.name,
                    "country": m.country,
                    "roles": list(m.roles),
                    "lists": list(m.lists),
                    "suspended": m.suspended,
                    "accounts": [
                        {
                            "currency": a.currency,
                            "credit_line": format_amount(
                                a.credit_line_minor, self.currencies[a.currency].currency.minor_units
                            ),
                        }
                        for a in self.accounts.values()
                        if a.member == m.id
                    ],
                }
                for m in self.members.values()
            ],
            "comprehensive_sanction_countries": list(self.comprehensive_sanction_countries),
            "liquidity_saving": self.lsm.to_config(),
            "nodes": [n.to_config() for n in self.nodes.values()],
            "finality_quorum": self.quorum(),
            "operator_bic": self.operator_bic,
        }

    def quorum(self) -> int:
        """Signatures of member nodes that make a checkpoint final."""
        if self.finality_quorum is not None:
            return self.finality_quorum
        m = sum(1 for n in self.nodes.values() if n.member is not None)
        return 2 * m // 3 + 1

    def to_config(self) -> dict[str, Any]:
        """Lossless plain-data form carried in the log's init command."""
        return {
            "name": self.name,
            "currencies": [
                {
                    "code": c.code,
                    "minor_units": c.currency.minor_units,
                    "agent": c.agent,
                    "agent_bic": c.agent_bic,
                    "settlement": c.settlement,
                    "max_amount_minor": c.max_amount_minor,
                }
                for c in self.currencies.values()
            ],
            "members": [_member_cfg(m) for m in self.members.values()],
            "accounts": [_account_cfg(a) for a in self.accounts.values()],
            "comprehensive_sanction_countries": list(self.comprehensive_sanction_countries),
            "liquidity_saving": self.lsm.to_config(),
            # Only when set, so a network without nodes keeps the form (and state hash) it had.
            **({"nodes": [n.to_config() for n in self.nodes.values()]} if self.nodes else {}),
            **({"finality_quorum": self.finality_quorum} if self.finality_quorum is not None else {}),
            # only when set, so the init command of a network without one reads as it always did
            **({"operator_bic": self.operator_bic} if self.operator_bic else {}),
        }

    @staticmethod
    def from_config(cfg: Mapping[str, Any]) -> Network:
        currencies = {
            c["code"]: CurrencyConfig(
                Currency(c["code"], c["minor_units"]),
                c["agent"],
                c["agent_bic"],
                c["settlement"],
                c["max_amount_minor"],
            )
            for c in cfg["currencies"]
        }
        members = {
            m["id"]: Member(
                m["id"], m["bic"], m["country"], m["name"], m["lei"], tuple(m["roles"]),
                tuple(m["lists"]), m["suspended"],
            )
            for m in cfg["members"]
        }
        accounts = {
            (a["member"], a["currency"]): Account(
                a["member"], a["currency"], a["opening_minor"], a["credit_line_minor"],
                a["net_debit_cap_minor"],
            )
            for a in cfg["accounts"]
        }
        lsm = LiquiditySaving(**cfg.get("liquidity_saving", {}))
        nodes = {n["name"]: NodeKey(n["name"], n["public_key"], n["member"], n["sequencer"])
                 for n in cfg.get("nodes", [])}
        return _build(cfg["name"], currencies, members, accounts, tuple(cfg["comprehensive_sanction_countries"]),
                      lsm, nodes, cfg.get("finality_quorum"), cfg.get("operator_bic"))

    # --- changes (applied by the engine from log commands) ---
    def with_member(self, member: Member, accounts: list[Account]) -> Network:
        members = dict(self.members)
        members[member.id] = member
        accts = dict(self.accounts)
        for a in accounts:
            accts[(a.member, a.currency)] = a
        return _build(self.name, self.currencies, members, accts, self.comprehensive_sanction_countries, self.lsm,
                      self.nodes, self.finality_quorum, self.operator_bic)

    def with_account(self, account: Account) -> Network:
        accts = dict(self.accounts)
        accts[(account.member, account.currency)] = account
        return _build(self.name, self.currencies, self.members, accts, self.comprehensive_sanction_countries,
                      self.lsm, self.nodes, self.finality_quorum, self.operator_bic)

    def with_suspended(self, member_id: str, suspended: bool) -> Network:
        members = dict(self.members)
        members[member_id] = replace(members[member_id], suspended=suspended)
        return _build(self.name, self.currencies, members, self.accounts, self.comprehensive_sanction_countries,
                      self.lsm, self.nodes, self.finality_quorum, self.operator_bic)

    def with_nodes(self, changes: list[dict[str, Any]]) -> Network:
        """Add, rotate (same name, new key) or remove (`remove: true`) registered nodes."""
        nodes = dict(self.nodes)
        for n in changes:
            if n.get("remove"):
                nodes.pop(n["name"], None)
            else:
                nodes[n["name"]] = NodeKey(n["name"], n["public_key"], n["member"], n["sequencer"])
        return _build(self.name, self.currencies, self.members, self.accounts, self.comprehensive_sanction_countries,
                      self.lsm, nodes, self.finality_quorum, self.operator_bic)


def _build(
    name: str,
    currencies: Mapping[str, CurrencyConfig],
    members: Mapping[str, Member],
    accounts: Mapping[tuple[str, str], Account],
    countries: tuple[str, ...],
    lsm: LiquiditySaving | None = None,
    nodes: Mapping[str, NodeKey] | None = None,
    finality_quorum: int | None = None,
    operator_bic: str | None = None,
) -> Network:
    bic_index: dict[str, str] = {}
    for m in members.values():
        bic_index[m.bic] = m.id
        bic_index.setdefault(m.bic[:8], m.id)
    return Network(name, dict(currencies), dict(members), dict(accounts), countries, bic_index,
                   lsm or LiquiditySaving(), dict(nodes or {}), finality_quorum, operator_bic)


# ---------------------------------------------------------------- TOML parsing


_TOML_TYPES = {str: "string", int: "integer", bool: "boolean", float: "float", list: "array", dict: "table"}


def _toml_type(v: Any) -> str:
    return _TOML_TYPES.get(type(v), type(v).__name__)


def _table(v: Any, where: str, allowed: frozenset[str]) -> dict[str, Any]:
    """A TOML table holding no key outside `allowed`; the error names the table and the keys."""
    if not isinstance(v, dict):
        raise NetworkError(f"{where}: expected a table, got {_toml_type(v)}")
    unknown = v.keys() - allowed
    if unknown:
        raise NetworkError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(sorted(unknown))}")
    return v


def _tables(d: Mapping[str, Any], key: str, where: str, allowed: frozenset[str]) -> list[dict[str, Any]]:
    """An optional array of tables (`[[key]]`), each checked by `_table`."""
    v = d.get(key, [])
    if not isinstance(v, list):
        raise NetworkError(f"{where}{key}: expected an array of tables ([[{key}]]), got {_toml_type(v)}")
    return [_table(x, f"{where}{key}[{i}]", allowed) for i, x in enumerate(v)]


def _req(d: Mapping[str, Any], key: str, where: str, typ: type | tuple[type, ...]) -> Any:
    if key not in d:
        raise NetworkError(f"{where}.{key}: missing")
    v = d[key]
    if not isinstance(v, typ) or (isinstance(v, bool) and typ is not bool):
        raise NetworkError(f"{where}.{key}: expected {_typename(typ)}, got {_toml_type(v)}")
    return v


def _opt(d: Mapping[str, Any], key: str, where: str, typ: type | tuple[type, ...], default: Any) -> Any:
    return _req(d, key, where, typ) if key in d else default


def _strings(d: Mapping[str, Any], key: str, where: str, default: list[str], known: frozenset[str] | None,
             what: str) -> list[str]:
    """An optional array of distinct strings, each one of `known` (when given)."""
    items = _opt(d, key, where, list, default)
    seen: set[str] = set()
    for i, x in enumerate(items):
        if not isinstance(x, str):
            raise NetworkError(f"{where}.{key}[{i}]: expected string, got {_toml_type(x)}")
        if known is not None and x not in known:
            raise NetworkError(f"{where}.{key}[{i}]: unknown {what} {x!r} (known: {', '.join(sorted(known))})")
        if x in seen:
            raise NetworkError(f"{where}.{key}[{i}]: {what} {x!r} listed twice")
        seen.add(x)
    return list(items)


def _typename(typ: type | tuple[type, ...]) -> str:
    if isinstance(typ, tuple):
        return " or ".join(_TOML_TYPES.get(t, t.__name__) for t in typ)
    return _TOML_TYPES.get(typ, typ.__name__)


def _amount(text: Any, units: int, where: str) -> int:
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise NetworkError(f"{where}: expected a decimal string such as \"1250.50\", got {_toml_type(text)}")
    try:
        return parse_amount(text, units)
    except AmountError as e:
        raise NetworkError(f"{where}: {e}") from None


class _Totals:
    """Running total per currency of what the accounts may hold: opening balances (issued by the
    agent, whose issuance account floors at -SUPPLY_MINOR_MAX) plus credit lines (what members may
    owe, so what the others may hold on top of the supply). Refused at the key that passes the bound,
    so that every balance fits a signed 64-bit column and `init` never fails half-way."""

    def __init__(self, currencies: Mapping[str, CurrencyConfig]) -> None:
        self._currencies = currencies
        self._total: dict[str, int] = {}

    def add(self, currency: str, delta_minor: int, where: str) -> None:
        total = self._total.get(currency, 0) + delta_minor
        self._total[currency] = total
        if total > SUPPLY_MINOR_MAX:
            units = self._currencies[currency].currency.minor_units
            raise NetworkError(
                f"{where}: opening balances and credit lines in {currency} would total "
                f"{format_amount(total, units)}, above the most a currency can hold "
                f"({format_amount(SUPPLY_MINOR_MAX, units)})")


def validate_bic(bic: str, where: str) -> str:
    m = _BIC_RE.fullmatch(bic)
    if m is None:
        raise NetworkError(f"{where}: {bic!r} is not a valid BIC (ISO 9362: 8 or 11 characters)")
    if m.group(1) not in _ISO3166:
        raise NetworkError(f"{where}: BIC {bic!r} has unknown country code {m.group(1)!r}")
    return bic


def _validate_lei(lei: str, where: str) -> str:
    if not _LEI_RE.fullmatch(lei):
        raise NetworkError(f"{where}: {lei!r} is not a valid LEI (ISO 17442: 20 characters)")
    digits = "".join(str(int(ch, 36)) for ch in lei)
    if int(digits) % 97 != 1:
        raise NetworkError(f"{where}: LEI {lei!r} fails its check digits")
    return lei


def _parse_member(m: Mapping[str, Any], where: str) -> Member:
    """A member table whose keys `_table` has already checked."""
    mid = _req(m, "id", where, str)
    if not _MEMBER_ID_RE.fullmatch(mid):
        raise NetworkError(f"{where}.id: {mid!r} must be 1-16 characters A-Z, 0-9 or _")
    bic = validate_bic(_req(m, "bic", where, str), f"{where}.bic")
    country = _req(m, "country", where, str)
    if country not in _ISO3166:
        raise NetworkError(f"{where}.country: {country!r} is not an ISO 3166 alpha-2 code")
    lei = _opt(m, "lei", where, str, None)
    if lei is not None:
        _validate_lei(lei, f"{where}.lei")
    roles = tuple(_strings(m, "roles", where, ["member"], ROLES, "role"))
    lists = _strings(m, "lists", where, [], LIST_SOURCES, "list")
    # The UN Security Council lists bind every member; a config cannot opt out of them.
    if "un-xml" not in lists:
        lists.insert(0, "un-xml")
    return Member(
        id=mid,
        bic=bic,
        country=country,
        name=_opt(m, "name", where, str, ""),
        lei=lei,
        roles=roles,
        lists=tuple(lists),
        suspended=_opt(m, "suspended", where, bool, False),
    )


def _parse_account(a: Mapping[str, Any], where: str, currencies: Mapping[str, CurrencyConfig],
                   members: Mapping[str, Member]) -> Account:
    """An account table whose keys `_table` has already checked."""
    member = _req(a, "member", where, str)
    if member not in members:
        raise NetworkError(f"{where}.member: unknown member {member!r}")
    ccy = _req(a, "currency", where, str)
    if ccy not in currencies:
        raise NetworkError(f"{where}.currency: currency {ccy!r} is not in the network")
    units = currencies[ccy].currency.minor_units
    opening = _amount(a.get("opening_balance", "0"), units, f"{where}.opening_balance")
    credit = _amount(a.get("credit_line", "0"), units, f"{where}.credit_line")
    cap = a.get("net_debit_cap")
    cap_minor = None if cap is None else _amount(cap, units, f"{where}.net_debit_cap")
    return Account(member, ccy, opening, credit, cap_minor)


_INLINE_ACCOUNT_TABLES = ("opening", "credit_lines", "net_debit_caps")


def _inline_accounts(m: Mapping[str, Any], mid: str, where: str, currencies: Mapping[str, CurrencyConfig]
                     ) -> list[tuple[str, Account]]:
    """A member's `opening`, `credit_lines` and `net_debit_caps` tables, keyed by currency; each
    account with the key that declared it first (for errors)."""
    tables = {name: _opt(m, name, where, dict, {}) for name in _INLINE_ACCOUNT_TABLES}
    first: dict[str, str] = {}
    for name, table in tables.items():
        for ccy in table:
            if ccy not in currencies:
                raise NetworkError(f"{where}.{name}.{ccy}: currency {ccy!r} is not in the network")
            first.setdefault(ccy, f"{where}.{name}.{ccy}")
    opening, credit, caps = (tables[name] for name in _INLINE_ACCOUNT_TABLES)
    out = []
    for ccy, key in first.items():
        units = currencies[ccy].currency.minor_units
        cap = caps.get(ccy)
        out.append((key, Account(
            mid, ccy,
            _amount(opening.get(ccy, "0"), units, f"{where}.opening.{ccy}"),
            _amount(credit.get(ccy, "0"), units, f"{where}.credit_lines.{ccy}"),
            None if cap is None else _amount(cap, units, f"{where}.net_debit_caps.{ccy}"),
        )))
    return out


def _parse_currency(c: Mapping[str, Any], where: str) -> CurrencyConfig:
    code = _req(c, "code", where, str)
    units = _req(c, "minor_units", where, int)
    try:
        cur = Currency(code, units)
    except ValueError as e:
        raise NetworkError(f"{where}: {e}") from None
    agent = _req(c, "agent", where, str)
    if not _MEMBER_ID_RE.fullmatch(agent):
        raise NetworkError(f"{where}.agent: {agent!r} must be 1-16 characters A-Z, 0-9 or _")
    agent_bic = validate_bic(_req(c, "agent_bic", where, str), f"{where}.agent_bic")
    mode = _opt(c, "settlement", where, str, "rtgs")
    if mode not in SETTLEMENT_MODES:
        raise NetworkError(f"{where}.settlement: must be one of {', '.join(SETTLEMENT_MODES)}")
    max_amt = c.get("max_amount")
    max_minor = None if max_amt is None else _amount(max_amt, units, f"{where}.max_amount")
    return CurrencyConfig(cur, agent, agent_bic, mode, max_minor)


def parse_network(doc: Mapping[str, Any]) -> Network:
    """Validate a decoded network document; errors name the key (e.g. `members[3].bic`)."""
    doc = _table(doc, "network", NETWORK_KEYS)
    name = _opt(doc, "name", "network", str, "setara network")
    _req(doc, "currencies", "network", list)
    raw_ccys = _tables(doc, "currencies", "", CURRENCY_KEYS)
    if not raw_ccys or len(raw_ccys) > CURRENCIES_MAX:
        raise NetworkError(f"currencies: need 1..{CURRENCIES_MAX} entries")
    currencies: dict[str, CurrencyConfig] = {}
    agents: set[str] = set()
    for i, c in enumerate(raw_ccys):
        cfg = _parse_currency(c, f"currencies[{i}]")
        if cfg.code in currencies:
            raise NetworkError(f"currencies[{i}].code: currency {cfg.code} declared twice")
        currencies[cfg.code] = cfg
        agents.add(cfg.agent)
    _req(doc, "members", "network", list)
    raw_members = _tables(doc, "members", "", MEMBER_KEYS)
    if not raw_members or len(raw_members) > MEMBERS_MAX:
        raise NetworkError(f"members: need 1..{MEMBERS_MAX} entries")
    members: dict[str, Member] = {}
    for i, m in enumerate(raw_members):
        member = _parse_member(m, f"members[{i}]")
        if member.id in members:
            raise NetworkError(f"members[{i}].id: member {member.id} declared twice")
        if member.id in agents:
            raise NetworkError(f"members[{i}].id: {member.id} is a settlement agent's id")
        members[member.id] = member
    seen_bics: dict[str, str] = {}
    for member in members.values():
        if member.bic in seen_bics:
            raise NetworkError(f"members: BIC {member.bic} used by both {seen_bics[member.bic]} and {member.id}")
        seen_bics[member.bic] = member.id
    accounts: dict[tuple[str, str], Account] = {}
    totals = _Totals(currencies)
    declared: list[tuple[str, Account]] = []
    for i, m in enumerate(raw_members):
        declared += _inline_accounts(m, m["id"], f"members[{i}]", currencies)
    for i, a in enumerate(_tables(doc, "accounts", "", ACCOUNT_KEYS)):
        declared.append((f"accounts[{i}]", _parse_account(a, f"accounts[{i}]", currencies, members)))
    for where, acct in declared:
        key = (acct.member, acct.currency)
        if key in accounts:
            raise NetworkError(f"{where}: account {acct.member}/{acct.currency} declared twice")
        accounts[key] = acct
        totals.add(acct.currency, acct.opening_minor + acct.credit_line_minor, where)
    countries = tuple(_strings(doc, "comprehensive_sanction_countries", "network", ["KP"], _ISO3166,
                               "ISO 3166 country"))
    if "KP" not in countries:
        # UNSC resolutions 2270/2321/2397 apply to every UN member state's banks.
        countries = ("KP", *countries)
    operator_bic = doc.get("operator_bic")
    if operator_bic is not None:
        operator_bic = validate_bic(_req(doc, "operator_bic", "network", str), "operator_bic")
        if operator_bic in seen_bics or operator_bic[:8] in {b[:8] for b in seen_bics}:
            raise NetworkError(f"operator_bic: {operator_bic} is a member's BIC")
    nodes: dict[str, NodeKey] = {}
    for i, n in enumerate(_opt(doc, "node", "network", list, [])):
        node = _parse_node(n, f"node[{i}]", members)
        if node.name in nodes:
            raise NetworkError(f"node[{i}].name: node {node.name} declared twice")
        nodes[node.name] = node
    _check_node_keys(nodes.values())
    quorum = _parse_finality(doc, nodes)
    return _build(name, currencies, members, accounts, countries, _parse_lsm(doc), nodes, quorum, operator_bic)


NODES_MAX = 256


def _parse_node(n: Any, where: str, members: Mapping[str, Member]) -> NodeKey:
    if not isinstance(n, dict):
        raise NetworkError(f"{where}: expected a table")
    unknown = set(n) - {"name", "public_key", "member", "sequencer", "remove"}
    if unknown:
        raise NetworkError(f"{where}: unknown key {sorted(unknown)[0]}")
    name = _req(n, "name", where, str)
    if not _NODE_NAME_RE.fullmatch(name):
        raise NetworkError(f"{where}.name: {name!r} must be 1-64 characters A-Z, a-z, 0-9, _ or -")
    key = _req(n, "public_key", where, str)
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise NetworkError(f"{where}.public_key: expected base64 of a 32-byte Ed25519 public key "
                           "(as `setara node keygen` prints)")
    member = _opt(n, "member", where, str, None)
    if member is not None and member not in members:
        raise NetworkError(f"{where}.member: unknown member {member!r}")
    return NodeKey(name, key, member, _opt(n, "sequencer", where, bool, False))


def _check_node_keys(nodes: Iterable[NodeKey]) -> None:
    seen: dict[str, str] = {}
    count = 0
    for n in nodes:
        count += 1
        if n.public_key in seen:
            raise NetworkError(f"node {n.name}: public key already registered for node {seen[n.public_key]}")
        seen[n.public_key] = n.name
    if count > NODES_MAX:
        raise NetworkError(f"node: at most {NODES_MAX} nodes")


def _parse_finality(doc: Mapping[str, Any], nodes: Mapping[str, NodeKey]) -> int | None:
    raw = _opt(doc, "finality", "network", dict, {})
    unknown = set(raw) - {"quorum"}
    if unknown:
        raise NetworkError(f"finality: unknown key {sorted(unknown)[0]}")
    quorum = _opt(raw, "quorum", "finality", int, None)
    if quorum is None:
        return None
    m = sum(1 for n in nodes.values() if n.member is not None)
    if not 1 <= quorum <= max(m, 1):
        raise NetworkError(f"finality.quorum: must be between 1 and the {m} member node(s)")
    return int(quorum)


LSM_PERIODIC = ("optimise", "heuristic", "lp-round", "all-or-nothing", "partial", "bilateral", "none")


def _parse_lsm(doc: Mapping[str, Any]) -> LiquiditySaving:
    where = "liquidity_saving"
    raw = _table(doc.get(where, {}), where, LSM_KEYS)
    on_entry = _opt(raw, "on_entry", where, str, "bilateral")
    if on_entry not in ("bilateral", "none"):
        raise NetworkError(f"{where}.on_entry: must be bilateral or none")
    periodic = _opt(raw, "periodic", where, str, "optimise")
    if periodic not in LSM_PERIODIC:
        raise NetworkError(f"{where}.periodic: must be one of {', '.join(LSM_PERIODIC)}")
    period = _opt(raw, "period_s", where, int, 60)
    if not 1 <= period <= 86_400:
        raise NetworkError(f"{where}.period_s: must be 1..86400 seconds")
    return LiquiditySaving(on_entry, periodic, period)


def load_network(text: str) -> Network:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise NetworkError(f"network TOML: {e}") from None
    return parse_network(doc)


def parse_network_change(text: str, network: Network) -> dict[str, Any]:
    """Parse a `setara network apply` change file into a plain command body.

    Supported: `[[add_member]]` tables (a member plus its `accounts`), and `[[credit_line]]` tables
    (`member`, `currency`, `credit_line`, optional `net_debit_cap`).
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise NetworkError(f"change TOML: {e}") from None
    doc = _table(doc, "change", CHANGE_KEYS)
    totals = _Totals(network.currencies)
    for acct in network.accounts.values():
        totals.add(acct.currency, acct.opening_minor + acct.credit_line_minor, "network")
    add: list[dict[str, Any]] = []
    for i, m in enumerate(_tables(doc, "add_member", "", ADD_MEMBER_KEYS)):
        where = f"add_member[{i}]"
        member = _parse_member(m, where)
        if member.id in network.members or any(x["member"].id == member.id for x in add):
            raise NetworkError(f"{where}.id: member {member.id} already exists")
        if member.id in {c.agent for c in network.currencies.values()}:
            raise NetworkError(f"{where}.id: {member.id} is a settlement agent's id")
        if network.member_by_bic(member.bic) is not None or any(x["member"].bic == member.bic for x in add):
            raise NetworkError(f"{where}.bic: BIC {member.bic} already in use")
        declared = _inline_accounts(m, member.id, where, network.currencies)
        for j, a in enumerate(_tables(m, "accounts", f"{where}.", ADD_MEMBER_ACCOUNT_KEYS)):
            acct_where = f"{where}.accounts[{j}]"
            declared.append((acct_where, _parse_account({**a, "member": member.id}, acct_where,
                                                        network.currencies, {member.id: member})))
        accts: dict[str, Account] = {}
        for acct_where, acct in declared:
            if acct.currency in accts:
                raise NetworkError(f"{acct_where}: account {member.id}/{acct.currency} declared twice")
            accts[acct.currency] = acct
            totals.add(acct.currency, acct.opening_minor + acct.credit_line_minor, acct_where)
        add.append({"member": member, "accounts": list(accts.values())})
    lines: list[Account] = []
    for i, c in enumerate(_tables(doc, "credit_line", "", CREDIT_LINE_KEYS)):
        where = f"credit_line[{i}]"
        acct = _parse_account(c, where, network.currencies, network.members)
        old = network.accounts.get((acct.member, acct.currency))
        if old is None:
            raise NetworkError(f"{where}: account {acct.member}/{acct.currency} does not exist")
        if any((x.member, x.currency) == (acct.member, acct.currency) for x in lines):
            raise NetworkError(f"{where}: account {acct.member}/{acct.currency} changed twice")
        totals.add(acct.currency, acct.credit_line_minor - old.credit_line_minor, f"{where}.credit_line")
        lines.append(acct)
    members_after = {**network.members, **{x["member"].id: x["member"] for x in add}}
    node_changes: list[dict[str, Any]] = []
    nodes_after = dict(network.nodes)
    for i, n in enumerate(doc.get("node", [])):
        where = f"node[{i}]"
        if isinstance(n, dict) and n.get("remove") is True:
            name = _req(n, "name", where, str)
            if set(n) - {"name", "remove"}:
                raise NetworkError(f"{where}: a removal names only the node (name, remove = true)")
            if name not in nodes_after:
                raise NetworkError(f"{where}.name: no node {name!r} to remove")
            del nodes_after[name]
            node_changes.append({"name": name, "remove": True})
            continue
        node = _parse_node(n, where, members_after)
        nodes_after[node.name] = node  # a known name is a key rotation
        node_changes.append(node.to_config())
    _check_node_keys(nodes_after.values())
    if not add and not lines and not node_changes:
        raise NetworkError("change: nothing to apply (expected [[add_member]], [[credit_line]] or [[node]])")
    return {
        "add_members": [
            {
                "member": _member_cfg(x["member"]),
                "accounts": [_account_cfg(a) for a in x["accounts"]],
            }
            for x in add
        ],
        "credit_lines": [_account_cfg(a) for a in lines],
        **({"nodes": node_changes} if node_changes else {}),
    }


def _member_cfg(m: Member) -> dict[str, Any]:
    return {
        "id": m.id, "bic": m.bic, "country": m.country, "name": m.name, "lei": m.lei,
        "roles": list(m.roles), "lists": list(m.lists), "suspended": m.suspended,
    }


def _account_cfg(a: Account) -> dict[str, Any]:
    return {
        "member": a.member, "currency": a.currency, "opening_minor": a.opening_minor,
        "credit_line_minor": a.credit_line_minor, "net_debit_cap_minor": a.net_debit_cap_minor,
    }


def member_from_cfg(m: Mapping[str, Any]) -> Member:
    return Member(
        m["id"], m["bic"], m["country"], m["name"], m["lei"], tuple(m["roles"]), tuple(m["lists"]),
        m["suspended"],
    )


def account_from_cfg(a: Mapping[str, Any]) -> Account:
    return Account(a["member"], a["currency"], a["opening_minor"], a["credit_line_minor"],
                   a["net_debit_cap_minor"])


def example_toml() -> str:
    return resources.files("setara.core").joinpath("example_network.toml").read_text(encoding="utf-8")
