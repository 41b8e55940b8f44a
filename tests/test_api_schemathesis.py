"""Property-based checks of the OpenAPI schema with Schemathesis (in-process ASGI): no request, however
odd, makes the API answer 5xx. Runs with an operator key and with a member key. Skips when
schemathesis is not installed."""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from setara.api import create_app  # noqa: E402
from setara.api.keys import issue_key  # noqa: E402
from setara.core.network import example_toml, load_network  # noqa: E402
from setara.node import Node  # noqa: E402
from setara.store import open_store  # noqa: E402

EXAMPLES = 8
SETTINGS: dict[str, Any] = {"max_examples": EXAMPLES, "deadline": None, "database": None,
                            "suppress_health_check": list(HealthCheck)}


def _runner(op: Any, key: str, role: str, failures: list[str], calls: list[int]) -> Any:
    def run(case: Any) -> None:
        calls.append(1)
        response = case.call(headers={"Authorization": f"Bearer {key}"})
        if response.status_code >= 500:
            failures.append(f"{role} {op.method.upper()} {op.path}: {response.status_code} {response.text[:200]}")

    return run


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, str]]:
    db = str(tmp_path_factory.mktemp("st") / "s.db")
    Node.create(db, load_network(example_toml()), 1_700_000_000_000).close()
    store = open_store(db)
    keys = {"operator": issue_key(store, "operator", None)[1], "member": issue_key(store, "member", "BANK_ID1")[1],
            "compliance": issue_key(store, "compliance", None)[1]}
    store.close()
    return create_app(db), keys


def test_no_server_errors(setup: tuple[Any, dict[str, str]]) -> None:
    app, keys = setup
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    calls: list[int] = []
    ops = [r.ok() for r in schema.get_all_operations()]
    assert len(ops) >= 15
    for op in ops:
        for role in ("operator", "member"):
            given(case=op.as_strategy())(settings(**SETTINGS)(_runner(op, keys[role], role, failures, calls)))()
    assert failures == [], failures[:5]
    assert len(calls) >= 4 * len(ops)
