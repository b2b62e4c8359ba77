"""Stream landing on real Delta tables: the file path's rows from the same lines, offsets in the rows' commit,
each message once after a crash or a producer's retry, malformed and oversized messages quarantined."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from retreasure.bronze import native
from retreasure.bronze.ingest import run_ingest
from retreasure.bronze.pii import VAULT, PiiMasker
from retreasure.lake import Lake
from retreasure.settings import Settings
from retreasure.streaming import offsets
from retreasure.streaming.landing import Message, TopicLanding
from retreasure_sim.business import Truth
from retreasure_sim.files.web import clickstream_messages, json_text
from tests.conftest import HMAC_KEY, VAULT_KEY

TOPIC = "web.clickstream"
DAY_MS = int(datetime(2025, 3, 4, 12, tzinfo=UTC).timestamp() * 1000)
LIMITS = {"max_line_bytes": 2048, "max_record_bytes": 1024}
# Every shape the file path treats in its own way: PII where declared and in free text, keys and times of
# every type and form, missing and broken ones, and lines that are not objects.
LINES = [
    json.dumps(
        {
            "type": "track",
            "messageId": "m-1",
            "timestamp": "2025-03-04T10:11:12.123Z",
            "context": {"ip": "192.0.2.7", "traits": {"email": "Ann@Example.com"}, "userAgent": "Mozilla/5.0 (X11)"},
            "properties": {"note": "call me on +44 20 7946 0958 or ann@example.org", "price": "12.50"},
        }
    ),
    json.dumps({"messageId": "m-2", "timestamp": "2025-03-04T11:00:00+01:00", "name": "Zoë's café 😀"}),
    json.dumps({"messageId": 12345, "timestamp": 1741082400, "properties": {"sku": "SKU-212-555-0147"}}),
    json.dumps({"messageId": 1.5, "timestamp": "1741082400"}),
    json.dumps({"messageId": True, "timestamp": "2025-03-04T10:00:00.5Z"}),
    json.dumps({"messageId": {"id": 1}, "timestamp": "2025-03-04T10:00:00Z"}),
    json.dumps({"messageId": "reach me at 0049 30 1234567", "timestamp": "2025-03-04T10:00:00Z"}),
    json.dumps({"messageId": "", "timestamp": "2025-03-04T10:00:00Z"}),
    json.dumps({"timestamp": "2025-03-04T10:00:00Z"}),
    json.dumps({"messageId": "m-3"}),
    json.dumps({"messageId": "m-4", "timestamp": None}),
    json.dumps({"messageId": "m-5", "timestamp": ""}),
    json.dumps({"messageId": "m-6", "timestamp": "yesterday"}),
    json.dumps({"messageId": "m-7", "timestamp": "2025-03-04T10:00:00"}),
    json.dumps({"messageId": "m-8", "timestamp": "2025-02-30T10:00:00Z"}),
    json.dumps({"messageId": "m-9", "timestamp": "2025-03-04 10:00:00Z"}),
    json.dumps({"messageId": "m-10", "timestamp": "2025-03-04T10:00:00.1234567Z"}),
    json.dumps({"messageId": "m-11", "timestamp": ["2025-03-04T10:00:00Z"]}),
    json.dumps({"messageId": "m-12", "timestamp": "2025-03-04T23:30:00-05:00"}),
    json.dumps({"messageId": "m-13", "timestamp": "2025-03-04T10:00:00Z", "blob": "x" * 1500}),
    json.dumps({"messageId": "m-1", "timestamp": "2025-03-04T10:11:12.123Z"}),  # same key, another record
    '{"messageId": "m-14", "timestamp": "2025-03-04T10:00:00Z", "email": "bob@example.com"',
    '{"messageId": "m-15", "amount": NaN}',
    "[1, 2]",
    '"just text with 555-867-5309"',
]


def file_path_rows(make_settings: Callable[..., Settings], root: Path) -> Lake:
    settings = make_settings(lake_uri=str(root / "file-lake"), landing_dir=root / "landing", ingest=LIMITS)
    path = Path(settings.landing_dir) / "web" / "clickstream" / "2025-03-04.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    lake = Lake.from_settings(settings)
    run_ingest(settings, lake, ["web"])
    return lake


def landing(lake: Lake, topic: str = TOPIC, **limits: int) -> TopicLanding:
    return TopicLanding(lake, PiiMasker(HMAC_KEY, VAULT_KEY), topic, **(LIMITS | limits))


def messages(values: list[str | bytes | None], partition: int = 0, first_offset: int = 0) -> list[Message]:
    return [
        Message(TOPIC, partition, first_offset + n, value.encode() if isinstance(value, str) else value, DAY_MS)
        for n, value in enumerate(values)
    ]


def bronze(lake: Lake, table: str = "bronze.web_clickstream") -> list[dict[str, object]]:
    return lake.query(f"SELECT * FROM {table} ORDER BY record_hash, origin").to_pylist()


def without(rows: list[dict[str, object]], *columns: str) -> list[dict[str, object]]:
    return [{k: v for k, v in row.items() if k not in columns} for row in rows]


def test_the_same_lines_land_as_the_file_path_lands_them(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    by_file = file_path_rows(make_settings, tmp_path)
    by_stream = Lake(tmp_path / "stream-lake")
    landed = landing(by_stream).land(messages(LINES), "batch-1")
    file_rows, stream_rows = bronze(by_file), bronze(by_stream)
    assert len(stream_rows) == len(LINES) == landed.new_rows
    assert without(stream_rows, "origin", "batch_id", "ingested_at") == without(
        file_rows, "origin", "batch_id", "ingested_at"
    )
    # The cases are all there: tokens where the file path puts them, every reason of the file path.
    first = json.loads(next(r["raw"] for r in stream_rows if r["record_key"] == "m-1" and "context" in r["raw"]))
    assert first["context"]["ip"].startswith("pii:ip:") and first["context"]["traits"]["email"].startswith("pii:")
    assert "+44" not in json.dumps(first) and "ann@example.org" not in json.dumps(first)
    reasons = {str(r["error"]).split(":")[0] for r in stream_rows if r["error"]}
    assert {"oversized", "malformed JSON", "malformed", "no business key at 'messageId'"} <= reasons
    assert {"change time at 'timestamp' does not parse", "no change time at 'timestamp'"} <= reasons
    assert {r["origin"] for r in stream_rows} == {f"kafka://{TOPIC}/0/{n}" for n in range(len(LINES))}
    quarantine_columns = ("origin", "batch_id", "quarantined_at")
    assert without(bronze(by_stream, "quarantine.web_clickstream"), *quarantine_columns) == without(
        bronze(by_file, "quarantine.web_clickstream"), *quarantine_columns
    )
    assert landed.quarantined == landed.malformed == sum(1 for r in file_rows if r["error"])
    tokens = "SELECT token, kind FROM restricted.pii ORDER BY token"
    assert by_stream.query(tokens, [VAULT]).to_pylist() == by_file.query(tokens, [VAULT]).to_pylist()


def test_the_native_pass_lands_what_the_python_path_lands(
    tmp_path: Path, clean_truth: Truth, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same messages -- simulated ones and every odd case of LINES, with the same customer written three ways (the
    # vault keeps the first clear value of a token) -- with the native pass (when built) and with the Python path.
    simulated = [json_text(message) for _, _, message in clickstream_messages(clean_truth)][:2000]

    def event(n: int, email: str, note: str = "") -> str:
        return json.dumps({"messageId": f"v{n}", "traits": {"email": email}, "properties": {"note": note}})

    # One e-mail address written three ways, by messages of the common shape and one the safety net must see.
    same = [event(1, "Bob@Example.com"), event(2, "bob@example.com "), event(3, "BOB@example.com", "+44 20 7946 0958")]
    values = simulated + same + LINES + same[::-1]
    lakes = {}
    for switch in ("1", "0"):
        monkeypatch.setenv("RETREASURE_NATIVE", switch)
        lakes[switch] = lake = Lake(tmp_path / f"native-{switch}")
        stream = landing(lake, max_record_bytes=1 << 20)
        assert (stream._fast is not None and stream._fast.native is not None) == (switch == "1" and native.available())
        for start in range(0, len(values), 500):
            stream.land(messages(values[start : start + 500], first_offset=start), f"b{start}")
    columns = ("batch_id", "ingested_at")
    assert without(bronze(lakes["1"]), *columns) == without(bronze(lakes["0"]), *columns)
    quarantined = [
        without(bronze(lake, "quarantine.web_clickstream"), *columns, "quarantined_at") for lake in lakes.values()
    ]
    assert quarantined[0] == quarantined[1]
    masker = PiiMasker(HMAC_KEY, VAULT_KEY)
    vault = "SELECT token, kind, ciphertext FROM restricted.pii ORDER BY token"
    clear = [
        [
            (row["token"], row["kind"], masker.reveal(row["ciphertext"]))
            for row in lake.query(vault, [VAULT]).to_pylist()
        ]
        for lake in lakes.values()
    ]
    assert clear[0] == clear[1] and len(clear[0]) > 100


def test_each_commit_carries_the_offsets_of_every_partition_with_its_rows(lake: Lake) -> None:
    batch = messages(LINES[:3], partition=0, first_offset=40) + messages(LINES[3:5], partition=2, first_offset=7)
    landed = landing(lake).land(batch, "batch-1")
    assert landed.offsets == {0: (40, 42), 2: (7, 8)} and landed.version == 0
    log = Path(lake.table_uri(landed.table)) / "_delta_log" / "00000000000000000000.json"
    actions = [json.loads(line) for line in log.read_text().splitlines()]
    txns = {a["txn"]["appId"]: a["txn"]["version"] for a in actions if "txn" in a}
    assert txns == {f"retreasure-stream/{TOPIC}/0": 42, f"retreasure-stream/{TOPIC}/2": 8}
    assert sum(a["add"]["stats"] and json.loads(a["add"]["stats"])["numRecords"] for a in actions if "add" in a) == 5
    assert offsets.stored_offsets(lake, landed.table, TOPIC, [0, 1, 2]) == {0: 42, 2: 8}


def test_a_restart_after_a_crash_lands_each_message_once(lake: Lake) -> None:
    values = [json.dumps({"messageId": f"e{n}", "timestamp": "2025-03-04T10:00:00Z"}) for n in range(20)]
    landing(lake).land(messages(values[:10]), "before-the-crash")
    # A new process (nothing in memory) is handed the same messages again, and then a batch overlapping them.
    again = landing(lake)
    replayed = again.land(messages(values[:10]), "after-restart")
    assert (replayed.messages, replayed.already_landed, replayed.new_rows, replayed.version) == (0, 10, 0, None)
    overlapping = again.land(messages(values[5:], first_offset=5), "after-restart-2")
    assert (overlapping.already_landed, overlapping.new_rows, overlapping.offsets) == (5, 10, {0: (10, 19)})
    keys = [r["record_key"] for r in bronze(lake)]
    assert sorted(keys) == sorted(f"e{n}" for n in range(20))


def test_a_crash_between_the_quarantine_and_the_bronze_commit_quarantines_once(tmp_path: Path) -> None:
    values: list[str | bytes | None] = ["{broken", json.dumps({"messageId": "ok"}), None, "[]"]
    first = Lake(tmp_path / "first")
    landing(first).land(messages(values), "b1")
    # The lake as that crash leaves it: quarantine committed, bronze not.
    crashed = Lake(tmp_path / "crashed")
    shutil.copytree(tmp_path / "first" / "quarantine", tmp_path / "crashed" / "quarantine")
    rerun = landing(crashed).land(messages(values), "b1-again")
    assert rerun.new_rows == 4 and rerun.quarantined == 0
    assert len(bronze(crashed, "quarantine.web_clickstream")) == len(bronze(first, "quarantine.web_clickstream")) == 4


def test_a_rerun_in_other_batches_after_that_crash_still_quarantines_once(tmp_path: Path) -> None:
    # After the restart the batches need not end where they ended before the crash: a first batch that quarantines
    # a new message of partition 0 but stops short of partition 1's broken message must not move partition 1's
    # offset in the quarantine's log back, or that message is quarantined a second time.
    good = [json.dumps({"messageId": f"e{n}", "timestamp": "2025-03-04T10:00:00Z"}) for n in range(6)]
    zero = messages(["{broken 0", good[0], good[1], "{broken 3", good[2]], partition=0)
    one = messages([good[3], good[4], "{broken 2", good[5]], partition=1)
    first = Lake(tmp_path / "first")
    landing(first).land(zero[:3] + one, "b1")  # crashed after its quarantine commit: partition 0 to 2, 1 to 3
    crashed = Lake(tmp_path / "crashed")
    shutil.copytree(tmp_path / "first" / "quarantine", tmp_path / "crashed" / "quarantine")
    rerun = landing(crashed)
    assert rerun.land(zero + one[:2], "b1-again").quarantined == 1  # partition 0's new broken message only
    assert rerun.land(one[2:], "b2").quarantined == 0
    origins = sorted(row["origin"] for row in bronze(crashed, "quarantine.web_clickstream"))
    assert origins == [f"kafka://{TOPIC}/0/0", f"kafka://{TOPIC}/0/3", f"kafka://{TOPIC}/1/2"]
    assert sorted(row["origin"] for row in bronze(crashed) if row["error"]) == origins


def test_a_producers_duplicates_land_once_in_a_batch_across_batches_and_restarts(lake: Lake) -> None:
    event = json.dumps({"messageId": "e1", "timestamp": "2025-03-04T10:00:00Z", "context": {"ip": "192.0.2.9"}})
    other = json.dumps({"messageId": "e2", "timestamp": "2025-03-04T10:00:01Z"})
    first = landing(lake).land(messages([event, other, event], partition=0), "b1")
    assert (first.new_rows, first.duplicates) == (2, 1)
    second = landing(lake).land(messages([event, "{bad", "{bad"], partition=1), "b2")  # a restarted process
    assert (second.new_rows, second.duplicates, second.quarantined) == (1, 2, 1)
    rows = bronze(lake)
    assert len(rows) == 3 and len({r["record_hash"] for r in rows}) == 3
    assert len(bronze(lake, "quarantine.web_clickstream")) == 1


def test_a_record_the_file_path_landed_meanwhile_is_not_landed_again(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    lake = file_path_rows(make_settings, tmp_path)
    stream = landing(lake)
    stream.land(messages([json.dumps({"messageId": "s1", "timestamp": "2025-03-04T09:00:00Z"})]), "b1")
    landed = stream.land(messages(LINES[:2], first_offset=1), "b2")
    assert (landed.new_rows, landed.duplicates) == (0, 2)
    settings = make_settings(lake_uri=str(tmp_path / "file-lake"), landing_dir=tmp_path / "landing", ingest=LIMITS)
    late = Path(settings.landing_dir) / "web" / "clickstream" / "2025-03-05.jsonl"
    line = json.dumps({"messageId": "f1", "timestamp": "2025-03-04T08:00:00Z"})
    late.write_text(line + "\n")
    run_ingest(settings, lake, ["web"])  # another writer commits to the table the stream has in memory
    assert stream.land(messages([line], first_offset=3), "b3").new_rows == 0
    assert sum(1 for r in bronze(lake) if r["record_key"] == "f1") == 1


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "malformed: empty message (no value)"),
        (None, "malformed: empty message (no value)"),
        (b"\xff\xfe not utf-8", "malformed JSON: 'utf-8' codec can't decode"),
        (b'{"messageId": "m", "timestamp": "2025-03-04T10:00:00Z", "x": "\\ud800"}', "malformed: a lone surrogate"),
        (b'{"messageId": "big", "blob": "' + b"y" * 3000 + b'"}', "oversized: message of 3032 bytes (sha256 "),
        (json.dumps({"messageId": "m", "blob": "z" * 1100}).encode(), "oversized: record of 1127 bytes (sha256 "),
    ],
)
def test_malformed_and_oversized_messages_are_quarantined_and_the_partition_moves_on(
    lake: Lake, value: bytes | None, reason: str
) -> None:
    good = json.dumps({"messageId": "after", "timestamp": "2025-03-04T10:00:00Z"})
    landed = landing(lake).land(messages([value, good]), "b1")
    assert landed.offsets == {0: (0, 1)} and landed.new_rows == 2 and landed.quarantined == 1
    (quarantined,) = bronze(lake, "quarantine.web_clickstream")
    assert reason in str(quarantined["reason"]) and quarantined["origin"] == f"kafka://{TOPIC}/0/0"
    assert len(str(quarantined["raw"])) <= 4096 + 3
    assert [r["record_key"] for r in bronze(lake) if r["error"] is None] == ["after"]


def test_a_message_nested_deeper_than_orjson_writes_lands_and_the_partition_moves_on(lake: Lake) -> None:
    # orjson reads 1,024 levels but writes only 254: the batch masker must leave such a message to the per-record
    # functions, not fail the whole batch on it.
    deep = '{"messageId":"deep","timestamp":"2025-03-04T10:00:00Z","a":' + "[" * 300 + "]" * 300 + "}"
    good = json.dumps({"messageId": "after", "timestamp": "2025-03-04T10:00:00Z"})
    landed = landing(lake).land(messages([deep, good]), "b1")
    assert landed.new_rows == 2 and landed.quarantined == 0
    rows = {row["record_key"]: row for row in bronze(lake)}
    assert json.loads(str(rows["deep"]["raw"])) == json.loads(deep) and rows["deep"]["error"] is None


def test_a_topic_lands_in_its_entitys_table_and_an_unknown_topic_is_refused(lake: Lake) -> None:
    transaction = {"transaction_id": "T1", "occurred_at": "2025-03-04T10:00:00Z", "amount": "9.90"}
    batch = [Message("web.transactions", 1, 5, json.dumps(transaction).encode(), DAY_MS)]
    landed = landing(lake, "web.transactions").land(batch, "b1")
    assert str(landed.table) == "bronze.web_transactions" and landed.new_rows == 1
    assert bronze(lake, "bronze.web_transactions")[0]["record_key"] == "T1"
    with pytest.raises(ValueError, match="names no source entity"):
        landing(lake, "web.nothing")


def test_each_clear_value_reaches_the_vault_once_across_batches_restarts_and_writers(lake: Lake) -> None:
    def event(n: int, email: str) -> str:
        return json.dumps({"messageId": f"v{n}", "timestamp": "2025-03-04T10:00:00Z", "traits": {"email": email}})

    first = landing(lake)
    first.land(messages([event(1, "ann@example.com"), event(2, "bob@example.com")]), "b1")
    first.land(messages([event(3, "ann@example.com")], first_offset=2), "b2")
    masker = PiiMasker(HMAC_KEY, VAULT_KEY)  # another writer stores a token the stream has not read yet
    masker.mask_contacts("write to cy@example.com")
    masker.flush_vault(lake, "pos")
    first.land(messages([event(4, "cy@example.com"), event(5, "dee@example.com")], first_offset=3), "b3")
    landing(lake).land(messages([event(6, "bob@example.com")], first_offset=5), "b4")  # a restarted stream
    tokens = lake.query("SELECT token FROM restricted.pii", [VAULT]).column(0).to_pylist()
    assert len(tokens) == len(set(tokens)) == 4
