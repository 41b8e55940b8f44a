"""The named Store methods for screening (persisted indexes, audit records), on both backends."""

from __future__ import annotations

from setara.core.network import Network
from setara.store import open_store
from tests.test_store_backends import kind, make_url, net, new_network, url  # noqa: F401  (fixtures)


def test_list_index_round_trip_and_replace(url: str, net: Network) -> None:  # noqa: F811
    with new_network(url, net):
        pass
    store = open_store(url)
    try:
        store.check_schema()
        assert store.get_list_index("un-xml@1", "f1") is None
        store.put_list_index("un-xml@1", "f1", b"\x00index\xff", 1)
        assert store.get_list_index("un-xml@1", "f1") == b"\x00index\xff"
        assert store.get_list_index("un-xml@1", "f2") is None  # built by other matcher code
        assert store.get_list_index("un-xml@2", "f1") is None
        store.put_list_index("un-xml@1", "f2", b"newer", 2)
        assert store.get_list_index("un-xml@1", "f2") == b"newer"
        assert store.get_list_index("un-xml@1", "f1") is None
    finally:
        store.close()


def test_screening_audit_record_without_a_payment(url: str, net: Network) -> None:  # noqa: F811
    with new_network(url, net):
        pass
    store = open_store(url)
    try:
        store.add_screening_audit(123, "list-import", "forced", "officer ana forced un-xml@2: older", "un-xml", 2)
        rows = store._query("SELECT time_ms, payment_id, subject, decision, score, list, list_version, explanation"
                             " FROM screening_audit")
        assert [tuple(r) for r in rows] == [
            (123, None, "list-import", "forced", 0.0, "un-xml", 2, "officer ana forced un-xml@2: older")]
    finally:
        store.close()
