"""Recommendations judged against what the simulated business did and what its customers really like: better
than popularity on a time split, closer to the true taste than chance, never a sold item, the same for a seed."""

from __future__ import annotations

import json
import pickle
import shutil
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from retreasure.bronze.pii import PiiMasker
from retreasure.lake import Lake, TableRef
from retreasure.ml import reco_data, reco_run, recommend
from retreasure.ml.recommend import KINDS, Candidates, RecoParams
from retreasure.ml.runs import ML_RUNS, runs
from retreasure_sim.taste import tastes_of
from tests.conftest import HMAC_KEY
from tests.ml_fixtures import RecoLake, assert_documented


def _rows(lake: Lake, sql: str, *refs: object) -> list[dict[str, object]]:
    return lake.query(sql, list(refs)).to_pylist()  # type: ignore[arg-type]


def _customer_of_token(reco: RecoLake) -> dict[str, str]:
    masker = PiiMasker(HMAC_KEY)
    return {masker.token("email", c.email): c.customer_id for c in reco.truth["customers"]}


def test_recommendations_beat_popularity_on_recall_at_10(reco_lake: RecoLake) -> None:
    result = reco_lake.result
    for score in result.scores:
        print(
            f"{score.method:10} {score.group:4} customers={score.customers:4} recall@10={score.recall_at_10:.4f} "
            f"ndcg@10={score.ndcg_at_10:.4f} coverage={score.coverage:.3f}"
        )
    mine, base = result.score("hybrid"), result.score("popularity")
    assert mine is not None and base is not None and mine.customers >= 30
    assert mine.recall_at_10 > base.recall_at_10
    assert mine.ndcg_at_10 > base.ndcg_at_10
    assert mine.coverage > base.coverage
    assert result.promoted
    recorded = _rows(
        reco_lake.lake,
        "SELECT method, customer_group, recall_at_10, promoted FROM gold.ml_reco_eval "
        f"WHERE run_id = '{result.run_id}'",
        reco_run.EVAL,
    )
    assert {(r["method"], r["customer_group"]) for r in recorded} == {(s.method, s.group) for s in result.scores}
    assert all(r["promoted"] for r in recorded)


def test_predicted_affinity_recovers_the_true_taste_better_than_chance(reco_lake: RecoLake) -> None:
    tastes = tastes_of(reco_lake.truth)
    customer_of = _customer_of_token(reco_lake)
    lake = reco_lake.lake
    top_two: dict[str, set[str]] = defaultdict(set)
    personal = {
        r["customer_token"]
        for r in _rows(
            lake,
            "SELECT DISTINCT customer_token FROM gold.ml_recommendations WHERE method = 'personal'",
            reco_run.RECOMMENDATIONS,
        )
    }
    for row in _rows(
        lake,
        "SELECT customer_token, value FROM gold.ml_customer_affinity WHERE kind = 'category' AND rank <= 2",
        reco_run.AFFINITY,
    ):
        if row["customer_token"] in personal:
            top_two[str(row["customer_token"])].add(str(row["value"]))
    categories = {
        str(r["category"])
        for r in _rows(
            lake,
            "SELECT DISTINCT category FROM gold.dim_product WHERE category IS NOT NULL",
            reco_run.reco_data.DIM_PRODUCT,
        )
    }
    agreement = [len(found & set(tastes[customer_of[token]].categories)) / 2 for token, found in top_two.items()]
    chance = 2 / len(categories)
    share = sum(agreement) / len(agreement)
    print(f"top-two categories in the true taste: {share:.3f} of {len(agreement)} customers; chance {chance:.3f}")
    assert len(agreement) >= 100 and share > chance

    # The recommended items themselves: how many are of the customer's true categories, against the share of
    # such items among everything for sale (what recommending at random would give).
    for_sale = _truth_for_sale(reco_lake)
    recommended = _rows(
        lake,
        "SELECT customer_token, sku FROM gold.ml_recommendations WHERE method = 'personal'",
        reco_run.RECOMMENDATIONS,
    )
    hits = [for_sale[str(r["sku"])] in tastes[customer_of[str(r["customer_token"])]].categories for r in recommended]
    at_random = [
        sum(category in tastes[customer_of[token]].categories for category in for_sale.values()) / len(for_sale)
        for token in personal
    ]
    share_hits, share_random = sum(hits) / len(hits), sum(at_random) / len(at_random)
    print(f"recommended items of a true category: {share_hits:.3f}; at random {share_random:.3f}")
    assert share_hits > share_random


def _truth_for_sale(reco: RecoLake) -> dict[str, str]:
    """The items listed online with a unit on hand at the simulation's end, by SKU, with their category."""
    on_hand: dict[str, int] = defaultdict(int)
    for move in reco.truth["inventory_movements"]:
        on_hand[move.sku] += move.change
    return {p.sku: p.category for p in reco.truth["products"] if "shopify" in p.channels and on_hand[p.sku] > 0}


def test_no_sold_unique_item_is_ever_recommended(reco_lake: RecoLake) -> None:
    for_sale = _truth_for_sale(reco_lake)
    sold_unique = {p.sku for p in reco_lake.truth["products"] if p.unique and p.sku not in for_sale}
    lake = reco_lake.lake
    recommended = {
        str(r["sku"]) for r in _rows(lake, "SELECT DISTINCT sku FROM gold.ml_recommendations", reco_run.RECOMMENDATIONS)
    }
    similar = {
        str(r["similar_sku"])
        for r in _rows(lake, "SELECT DISTINCT similar_sku FROM gold.ml_similar_items", reco_run.SIMILAR)
    }
    print(
        f"{len(recommended)} items recommended, {len(similar)} shown as similar; {len(sold_unique)} unique items sold"
    )
    assert sold_unique and recommended and similar
    assert recommended <= set(for_sale) and similar <= set(for_sale)
    assert not (recommended | similar) & sold_unique
    # Every customer of gold has a list: their own, or their country and channel's (cold start).
    customers = _rows(
        lake,
        "SELECT count(DISTINCT customer_token) AS n, count(*) FILTER (WHERE rank > 10) AS beyond "
        "FROM gold.ml_recommendations",
        reco_run.RECOMMENDATIONS,
    )[0]
    known = _rows(lake, "SELECT count(*) AS n FROM gold.dim_customer", reco_run.reco_data.DIM_CUSTOMER)[0]
    assert customers == {"n": known["n"], "beyond": 0}


def test_training_is_deterministic_for_a_seed(reco_lake: RecoLake, tmp_path: Path) -> None:
    lake = Lake(shutil.copytree(reco_lake.lake.uri, tmp_path / "lake"))
    again = reco_run.run(lake)
    assert again.run_id == reco_lake.result.run_id and again.scores == reco_lake.result.scores
    for ref, order in (
        (reco_run.RECOMMENDATIONS, "customer_token, rank"),
        (reco_run.SIMILAR, "sku, rank"),
        (reco_run.AFFINITY, "customer_token, kind, rank"),
    ):
        sql = f"SELECT * FROM {ref} ORDER BY {order}"
        assert lake.query(sql, [ref]).equals(reco_lake.lake.query(sql, [ref])), ref


def test_each_run_is_recorded_with_its_metrics_and_a_model_that_reproduces_what_is_served(
    reco_lake: RecoLake,
) -> None:
    result, lake = reco_lake.result, reco_lake.lake
    (recorded,) = runs(lake, reco_run.TASK)
    assert (recorded["run_id"], recorded["status"], recorded["model"]) == (result.run_id, "promoted", reco_run.MODEL)
    metrics = json.loads(str(recorded["metrics_json"]))
    for score in result.scores:
        assert metrics[f"{score.method}_{score.group}_recall_at_10"] == score.recall_at_10
        assert metrics[f"{score.method}_{score.group}_ndcg_at_10"] == score.ndcg_at_10
    assert metrics["recommendations"] == result.recommendations
    params = json.loads(str(recorded["params_json"]))
    assert params["top_n"] == RecoParams().top_n and params["als"]["seed"] == RecoParams().als.seed
    artefact = Path(str(recorded["artefact"]))
    assert artefact.parent.parent == Path(lake.uri) / "ops" / "ml_artefacts" and artefact.name == result.run_id
    assert {p.name for p in artefact.iterdir()} == {"params.json", "metrics.json", "model.pkl", "popularity.parquet"}
    # The kept model is the one that scored: it gives a served customer the list gold holds for them.
    model = pickle.loads((artefact / "model.pkl").read_bytes())
    served = _rows(
        lake,
        "SELECT customer_token, sku FROM gold.ml_recommendations WHERE method = 'personal' "
        "AND customer_token = (SELECT min(customer_token) FROM gold.ml_recommendations WHERE method = 'personal') "
        "ORDER BY rank",
        reco_run.RECOMMENDATIONS,
    )
    data = reco_data.load(lake)
    who = str(served[0]["customer_token"])
    bought = recommend.purchased(data.interactions).get(who, ())
    again, how = recommend.recommend(model, who, Candidates(model, data.for_sale(None)), len(served), bought)
    assert how == "personal" and [sku for sku, _ in again] == [r["sku"] for r in served]
    popularity = pq.read_table(artefact / "popularity.parquet").to_pylist()
    assert popularity and {r["sku"]: r["weight"] for r in popularity} == pytest.approx(model.popularity, abs=1e-6)


def test_the_tables_written_are_the_ones_documented(reco_lake: RecoLake) -> None:
    written = [reco_run.EVAL, reco_run.RECOMMENDATIONS, reco_run.SIMILAR, reco_run.AFFINITY, ML_RUNS]
    assert_documented(reco_lake.lake, written)


def test_a_run_that_does_not_beat_popularity_is_recorded_but_not_published(reco_lake: RecoLake, tmp_path: Path) -> None:
    lake = Lake(shutil.copytree(reco_lake.lake.uri, tmp_path / "lake"))
    served = (reco_run.RECOMMENDATIONS, reco_run.SIMILAR, reco_run.AFFINITY)
    before = {ref: lake.version(ref) for ref in served}
    rows_before = {ref: lake.query(f"SELECT * FROM {ref}", [ref]) for ref in served}
    # A model turned against each customer's taste (it prefers what they never look at) cannot beat popularity.
    contrary = RecoParams(behaviour_weight=0.0, kind_weights={kind: -1.0 for kind in KINDS})
    result = reco_run.run(lake, contrary)
    print([(s.method, s.group, round(s.recall_at_10, 4)) for s in result.scores])
    assert not result.promoted
    assert {ref: lake.version(ref) for ref in before} == before
    assert all(lake.query(f"SELECT * FROM {ref}", [ref]).equals(rows_before[ref]) for ref in served)
    flagged = _rows(
        lake, f"SELECT DISTINCT promoted FROM gold.ml_reco_eval WHERE run_id = '{result.run_id}'", reco_run.EVAL
    )
    assert flagged == [{"promoted": False}]
    # Flagged in the run record too, with what it scored and its artefact kept for a post-mortem.
    latest, previous = runs(lake, reco_run.TASK)
    assert (latest["run_id"], latest["status"]) == (result.run_id, "rejected")
    assert "does not beat popularity" in str(latest["reason"]) and previous["status"] == "promoted"
    hybrid, popular = result.score("hybrid"), result.score("popularity")
    assert hybrid and popular and hybrid.recall_at_10 <= popular.recall_at_10
    metrics = json.loads(str(latest["metrics_json"]))
    assert metrics["hybrid_warm_recall_at_10"] == hybrid.recall_at_10
    assert json.loads(str(latest["params_json"]))["kind_weights"] == contrary.kind_weights
    assert (Path(str(latest["artefact"])) / "model.pkl").is_file()


def test_the_weekly_dagster_asset_publishes_the_four_tables(reco_lake: RecoLake, tmp_path: Path) -> None:
    import dagster as dg

    from retreasure.pipeline.ml_assets import RECO_TABLES, reco_assets
    from retreasure.pipeline.resources import RetreasureResource

    lake = Lake(shutil.copytree(reco_lake.lake.uri, tmp_path / "lake"))
    runs_before = lake.count(reco_run.EVAL)
    result = dg.materialize(
        [reco_assets()], resources={"retreasure": RetreasureResource(lake_uri=lake.uri)}, raise_on_error=True
    )
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {f"{ref.layer}/{ref.name}" for ref in RECO_TABLES}
    assert lake.count(reco_run.EVAL) == runs_before + len(reco_lake.result.scores)


def test_a_losing_weekly_run_opens_an_incident_and_publishes_only_its_evaluation(
    reco_lake: RecoLake, tmp_path: Path
) -> None:
    import dagster as dg

    from retreasure.pipeline.ml_assets import reco_assets
    from retreasure.pipeline.resources import RetreasureResource

    lake = Lake(shutil.copytree(reco_lake.lake.uri, tmp_path / "lake"))
    contrary = {"behaviour_weight": 0.0, "kind_weights": {kind: -1.0 for kind in KINDS}}
    result = dg.materialize(
        [reco_assets()],
        resources={"retreasure": RetreasureResource(lake_uri=lake.uri)},
        run_config={"ops": {"recommendations": {"config": contrary}}},
    )
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {f"{reco_run.EVAL.layer}/{reco_run.EVAL.name}"}
    incidents = _rows(lake, "SELECT asset, status, error FROM ops.incidents", TableRef("ops", "incidents"))
    assert [(i["asset"], i["status"]) for i in incidents] == [(str(reco_run.RECOMMENDATIONS), "open")]
    assert "does not beat popularity" in str(incidents[0]["error"])


def test_the_command_publishes_a_run_that_beats_popularity_and_says_by_how_much(
    reco_lake: RecoLake, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import VAULT_KEY

    lake = Lake(shutil.copytree(reco_lake.lake.uri, tmp_path / "lake"))
    before = lake.version(reco_run.RECOMMENDATIONS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETREASURE_")} | {
        "RETREASURE_LAKE_URI": lake.uri,
        "RETREASURE_PII_HMAC_KEY": HMAC_KEY,
        "RETREASURE_PII_VAULT_KEY": VAULT_KEY,
        "RETREASURE_LOG_FILE": "-",
    }
    command = [str(Path(sys.executable).with_name("retreasure")), "ml", "recommend"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    hybrid, popular = reco_lake.result.score("hybrid"), reco_lake.result.score("popularity")
    assert hybrid and popular
    assert f"recall@10 {hybrid.recall_at_10:.4f} vs popularity {popular.recall_at_10:.4f}" in done.stdout
    assert "published" in done.stdout and "NOT" not in done.stdout
    assert lake.version(reco_run.RECOMMENDATIONS) > before
