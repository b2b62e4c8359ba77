"""A model whose contract gained a column (silver.web_events' order_revenue) on a lake built before it: the next
micro-build rebuilds that model in full, and what reads it, so the lake equals a batch build of the same bronze."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from retreasure.bronze.pii import PiiMasker
from retreasure.engine.build import build_models, lacks_contract_columns
from retreasure.engine.models import downstream, load_models
from retreasure.lake import Lake, TableRef
from retreasure.streaming.landing import Message, TopicLanding
from retreasure.streaming.microbuild import MicroBuilds
from retreasure_sim.model import Truth
from tests.conftest import HMAC_KEY, VAULT_KEY
from tests.helpers import rows_without

WEB_EVENTS = TableRef("silver", "web_events")
STREAMED = (TableRef("bronze", "web_clickstream"), TableRef("bronze", "web_transactions"))
NEW_COLUMN = "order_revenue"


def test_a_model_that_gained_a_column_is_rebuilt_in_full_by_the_next_micro_build(
    gold_lake: tuple[Truth, Lake], tmp_path: Path
) -> None:
    models = load_models()
    built = gold_lake[1]
    # A lake built now holds every contract column: no model is rebuilt in full for that reason.
    assert [str(ref) for ref, model in models.items() if lacks_contract_columns(built, model)] == []

    lake = Lake(shutil.copytree(built.uri, tmp_path / "lake"))
    # As built before order_revenue was added to the model.
    old = lake.query(f"SELECT * EXCLUDE ({NEW_COLUMN}) FROM {WEB_EVENTS}", [WEB_EVENTS])
    lake.overwrite(WEB_EVENTS, old, partition_by=["event_date"])
    assert NEW_COLUMN not in {f.name for f in Lake(lake.uri).delta(WEB_EVENTS).schema().fields}

    # One new order event arrives on the stream.
    raw = lake.query(
        "SELECT raw FROM bronze.web_clickstream WHERE raw LIKE '%Order Completed%' AND error IS NULL LIMIT 1",
        [STREAMED[0]],
    ).column(0)[0]
    record = {**json.loads(raw.as_py()), "messageId": "evolved-1"}
    landing = TopicLanding(lake, PiiMasker(HMAC_KEY, VAULT_KEY), "web.clickstream")
    landing.land([Message("web.clickstream", 7, 0, json.dumps(record).encode(), None)], "evolved")
    done = MicroBuilds(lake, STREAMED, every_s=60).build_now()
    assert done.status == "success", done.error
    assert NEW_COLUMN in {f.name for f in Lake(lake.uri).delta(WEB_EVENTS).schema().fields}

    batch = Lake(shutil.copytree(lake.uri, tmp_path / "batch"))
    assert not build_models(batch).blocked
    for ref in sorted({WEB_EVENTS} | downstream(models, {WEB_EVENTS})):
        if batch.exists(ref):
            assert rows_without(Lake(lake.uri), ref, ("run_id",)) == rows_without(batch, ref, ("run_id",)), ref
    revenue = Lake(lake.uri).query(
        f"SELECT count(*) AS n FROM {WEB_EVENTS} WHERE {NEW_COLUMN} IS NOT NULL AND event_id <> 'evolved-1'",
        [WEB_EVENTS],
    )
    assert revenue.column(0)[0].as_py() > 0, "the old partitions got the new column's values"
