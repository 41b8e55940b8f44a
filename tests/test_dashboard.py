"""The operator dashboard in a real headless Chromium (Debian's chromium driven by Playwright).

Screenshots are written to test-artifacts/ (git-ignored). Skips when chromium or playwright is absent.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("SETARA_CHROMIUM", "/usr/bin/chromium")
if not (Path(CHROMIUM).is_file() or shutil.which("chromium")):
    pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from setara.api import create_app  # noqa: E402
from setara.api.keys import issue_key  # noqa: E402
from setara.core.instructions import Instruction  # noqa: E402
from setara.core.network import Network, example_toml, load_network  # noqa: E402
from setara.node import Node  # noqa: E402
from setara.ports import ScreeningDecision  # noqa: E402
from setara.store import open_store  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


class HoldNamed:
    """Screening stand-in: a debtor name containing HOLD goes to review."""

    def decide(self, ins: Instruction, network: Network) -> ScreeningDecision:
        if "HOLD" in str(ins.parties.get("debtor_name", "")):
            return ScreeningDecision("review", "test-list@1 debtor_name 0.910 test-list:E-77", ({
                "subject": "debtor_name", "decision": "review", "score": 0.91, "entity_id": "E-77",
                "list": "test-list", "matched_name": "HOLD ME LTD", "list_versions": "test-list@1",
                "explanation": "stand-in"},))
        return ScreeningDecision("clear", "test-list:1")


def cycles_network() -> Network:
    t = example_toml()
    i = t.index('code = "PHP"')
    j = t.index('settlement = "rtgs"', i)
    return load_network(t[:j] + 'settlement = "cycles"' + t[j + len('settlement = "rtgs"'):])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    db = str(tmp_path_factory.mktemp("dash") / "s.db")
    Node.create(db, cycles_network(), 1_700_000_000_000).close()
    store = open_store(db)
    keys = {m: issue_key(store, "member", m)[1] for m in ("BANK_ID1", "BANK_ID2", "BANK_MY1", "BANK_PH1")}
    for role in ("operator", "compliance", "auditor"):
        keys[role] = issue_key(store, role, None)[1]
    store.close()
    app = create_app(db, screening=HoldNamed())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    base = f"http://127.0.0.1:{port}"
    seed(base, keys)
    yield base, keys
    server.should_exit = True
    th.join(20)


def seed(base: str, keys: dict[str, str]) -> None:
    def post(member: str, path: str, body: Any) -> Any:
        r = httpx.post(base + path, json=body, headers={"Authorization": f"Bearer {keys[member]}"}, timeout=30)
        assert r.status_code < 300, r.text
        return r.json()

    post("BANK_ID1", "/v1/payments/batch", [
        {"id": f"D-{i}", "debtor": "BANK_ID1", "creditor": "BANK_ID2", "currency": "IDR", "amount": f"{1000 + i}.00"}
        for i in range(40)])
    post("BANK_ID2", "/v1/payments", {"id": "D-back", "debtor": "BANK_ID2", "creditor": "BANK_ID1",
                                      "currency": "IDR", "amount": "15000.00"})
    post("BANK_MY1", "/v1/payments", {"id": "D-queued", "debtor": "BANK_MY1", "creditor": "BANK_ID1",
                                      "currency": "MYR", "amount": "8000000.00"})
    for n in (1, 2):
        held = post("BANK_ID1", "/v1/payments", {"id": f"H-{n}", "debtor": "BANK_ID1", "creditor": "BANK_ID2",
                                                 "currency": "IDR", "amount": "77.00",
                                                 "debtor_name": f"HOLD Trading Co {n}"})
        assert held["status"] == "HELD"
    # A deferred-net cycle in PHP: payments both ways, then the operator closes it.
    post("BANK_PH1", "/v1/payments", {"id": "C-1", "debtor": "BANK_PH1", "creditor": "BANK_ID1",
                                      "currency": "PHP", "amount": "5000.00"})
    post("BANK_ID1", "/v1/payments", {"id": "C-2", "debtor": "BANK_ID1", "creditor": "BANK_PH1",
                                      "currency": "PHP", "amount": "4000.00"})
    post("operator", "/v1/admin/cycles/PHP/close", None)


def browser_page(p: Any) -> tuple[Any, Any, list[str]]:
    browser = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium"),
                                args=ARGS, headless=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return browser, page, errors


def login(page: Any, base: str, key: str) -> None:
    page.goto(base + "/")
    page.fill("#keyInput", key)
    page.click("#connect")


def test_operator_sees_balances_queue_throughput_liquidity_cycles(served: tuple[str, dict[str, str]]) -> None:
    base, keys = served
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        browser, page, errors = browser_page(p)
        try:
            login(page, base, keys["operator"])
            page.wait_for_selector("#kpi-settled")
            assert page.inner_text("#who").startswith("operator")
            assert page.inner_text("#kpi-queue .v") == "1"
            assert page.inner_text("#kpi-holds .v") == "2"
            assert int(page.inner_text("#kpi-settled .v")) >= 41
            assert page.locator("#posChart svg rect").count() >= 8
            assert "BANK_ID1" in page.inner_text("#balTable")
            assert "MYR" in page.inner_text("#queueTable") and "8,000,000.00" not in page.inner_text("#queueTable")
            assert page.locator("#tputLine").count() == 1
            assert "IDR" in page.inner_text("#liqChart")
            assert page.locator("#cycleChart svg rect").count() >= 1
            assert "need a compliance key" in page.inner_text("#holdsNote")
            assert page.locator("#holdsTable button").count() == 0
            page.click("#ccyTabs button:has-text('PHP')")
            assert "BANK_PH1" in page.inner_text("#balTable")
            page.screenshot(path=str(ARTIFACTS / "dashboard-operator.png"), full_page=True)
            # The key lives in sessionStorage: a reload stays signed in.
            page.reload()
            page.wait_for_selector("#kpi-settled")
            page.click("#logout")
            assert page.is_visible("#login")
            assert errors == []
        finally:
            browser.close()


def test_compliance_releases_and_rejects_holds(served: tuple[str, dict[str, str]]) -> None:
    base, keys = served
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        browser, page, errors = browser_page(p)
        try:
            login(page, base, keys["compliance"])
            page.wait_for_selector("tr[data-hold='H-1'] button.release")
            page.screenshot(path=str(ARTIFACTS / "dashboard-compliance-holds.png"), full_page=True)
            decision = page.inner_text("tr[data-hold='H-1'] td.decision")
            assert "test-list@1" in decision and "debtor_name" in decision and "0.91" in decision
            assert "test-list:E-77" in decision and "HOLD ME LTD" in decision
            page.fill("tr[data-hold='H-1'] input.note", "false positive: different entity")
            page.click("tr[data-hold='H-1'] button.release")
            page.wait_for_selector("tr[data-hold='H-1']", state="detached")
            page.fill("tr[data-hold='H-2'] input.note", "true match")
            page.click("tr[data-hold='H-2'] button.reject")
            page.wait_for_selector("tr[data-hold='H-2']", state="detached")
            assert "No payment is held" in page.inner_text("#holdsTable")
            page.screenshot(path=str(ARTIFACTS / "dashboard-compliance-done.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
    h = {"Authorization": f"Bearer {keys['BANK_ID1']}"}
    assert httpx.get(base + "/v1/payments/H-1", headers=h).json()["status"] == "SETTLED"
    rej = httpx.get(base + "/v1/payments/H-2", headers=h).json()
    assert rej["status"] == "REJECTED" and rej["reason_code"] == "RR04"
    assert rej["reason"] == "rejected for regulatory reasons"  # the member is not told why (issue #16)
    full = httpx.get(base + "/v1/payments/H-2", headers={"Authorization": f"Bearer {keys['compliance']}"}).json()
    assert keys["compliance"].split(".")[0] in full["reason"] and "true match" in full["reason"]


def test_member_key_is_refused_by_the_page(served: tuple[str, dict[str, str]]) -> None:
    base, keys = served
    with playwright_sync.sync_playwright() as p:
        browser, page, _ = browser_page(p)
        try:
            login(page, base, keys["BANK_ID1"])
            page.wait_for_function("document.getElementById('error').textContent.length > 0")
            assert "member key" in page.inner_text("#error")
            login(page, base, "kdeadbeef.wrong")
            page.wait_for_function("document.getElementById('error').textContent.includes('refused')")
            page.screenshot(path=str(ARTIFACTS / "dashboard-refused.png"))
        finally:
            browser.close()


def test_api_reference_page_renders_offline(served: tuple[str, dict[str, str]]) -> None:
    base, _ = served
    with playwright_sync.sync_playwright() as p:
        browser, page, errors = browser_page(p)
        try:
            page.goto(base + "/docs")
            page.wait_for_selector("details.op")
            assert page.locator("details.op").count() >= 18
            assert "/v1/payments/batch" in page.inner_text("#ops")
            page.screenshot(path=str(ARTIFACTS / "api-reference.png"))
            assert errors == []
        finally:
            browser.close()
