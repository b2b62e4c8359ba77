"""The API's store of kept answers stays within its bytes, dropping the least recently used first."""

from __future__ import annotations

from retreasure.lake import TableRef
from retreasure.serving.api.cache import Entry, Key, ResponseStore, matches_etag

SALES = TableRef("gold", "mart_sales_daily")


def _entry(body_bytes: int) -> Entry:
    return Entry(b"x" * body_bytes, [(b"content-type", b"application/json")], b'"t"', {SALES: 3}, None)


def _key(n: int) -> Key:
    return ("/v1/kpis", (("n", str(n)),), "leadership", "127.0.0.1")


def test_the_store_keeps_its_bytes_under_the_cap_and_drops_the_least_recently_used() -> None:
    one = _entry(10_000)
    store = ResponseStore(max_bytes=one.size * 10)
    for n in range(10):
        store.put(_key(n), _entry(10_000))
    assert len(store) == 10 and store.size <= store.max_bytes
    assert store.get(_key(0)) is not None  # used now: the oldest unused is key 1
    for n in range(10, 15):
        store.put(_key(n), _entry(10_000))
    assert store.size <= store.max_bytes and len(store) == 10
    assert store.get(_key(0)) is not None
    assert [store.get(_key(n)) for n in range(1, 6)] == [None] * 5


def test_an_answer_too_big_for_the_store_is_not_kept_and_replacing_one_counts_once() -> None:
    store = ResponseStore(max_bytes=80_000)
    store.put(_key(1), _entry(20_000))
    assert store.get(_key(1)) is None and store.size == 0
    store.put(_key(1), _entry(1_000))
    store.put(_key(1), _entry(2_000))
    assert len(store) == 1 and store.size == _entry(2_000).size
    kept = store.get(_key(1))
    assert kept is not None
    store.discard(_key(1), _entry(2_000))  # not the one kept: stays
    assert store.get(_key(1)) is kept
    store.discard(_key(1), kept)
    assert store.get(_key(1)) is None and store.size == 0


def test_if_none_match_names_a_tag_among_several_weak_or_any() -> None:
    assert matches_etag(b'"a", W/"t"', b'"t"') and matches_etag(b"*", b'"t"') and matches_etag(b'"t"', b'"t"')
    assert not matches_etag(b'"a"', b'"t"') and not matches_etag(None, b'"t"') and not matches_etag(b"", b'"t"')
