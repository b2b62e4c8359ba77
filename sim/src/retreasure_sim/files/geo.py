"""Geo drops: each day's new customers as GeoJSON points, and the delivery zones whenever they change."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import date, datetime
from typing import Any

from retreasure_sim.files.drop import Doc, Dropper, amount, days
from retreasure_sim.model import DeliveryZone, Truth


def collection(features: list[dict[str, Any]]) -> Doc:
    """A FeatureCollection with one feature per line, as GIS exports write it."""
    records = [json.dumps(f, separators=(",", ":"), ensure_ascii=False) for f in features]
    return Doc('{"type":"FeatureCollection","features":[\n', records, "\n]}\n", ",\n")


def spoil_feature(record: str, rng: random.Random) -> str:
    """A broken copy of a feature that is still JSON (a broken one would sink the whole collection):
    coordinates written with decimal commas, as text."""
    feature = json.loads(record)

    def commas(node: Any) -> Any:
        return [commas(n) for n in node] if isinstance(node, list) else str(node).replace(".", ",")

    feature["geometry"]["coordinates"] = commas(feature["geometry"]["coordinates"])
    return json.dumps(feature, separators=(",", ":"), ensure_ascii=False)


def zone_feature(zone: DeliveryZone, drift: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "zone_id": zone.zone_id,
        "name": zone.name,
        "fee": amount(zone.fee, zone.currency),
        "currency": zone.currency,
        "valid_from": zone.valid_from.isoformat(),
    }
    if drift:
        properties["carrier_service"] = "standard"
    return {
        "type": "Feature",
        "id": zone.zone_id,
        "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in zone.ring]]},
        "properties": properties,
    }


def render(truth: Truth, dropper: Dropper) -> None:
    """Write one customers file per day and a zones file on the first day and on every zone change."""
    created: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for c in sorted(truth["customers"], key=lambda c: (c.created_at, c.customer_id)):
        created[c.created_at.date()].append(
            {
                "type": "Feature",
                "id": c.customer_id,
                "geometry": {"type": "Point", "coordinates": [c.lon, c.lat]},
                "properties": {
                    "customer_id": c.customer_id,
                    "postal_code": c.postal_code,
                    "country_code": c.country,
                    "city": c.city,
                },
            }
        )

    zones = sorted(truth["delivery_zones"], key=lambda z: (z.valid_from, z.zone_id))
    for day in days(truth.start, truth.end):
        relative = f"geo/customers/customers_{day.isoformat()}.geojson"
        features = created.get(day, [])
        if dropper.drifts(relative):
            features = [{**f, "properties": {**f["properties"], "geocoder": "postal-centroid"}} for f in features]
        dropper.drop("geo", "customer_locations", relative, collection(features), spoil_feature)
        if day == truth.start or any(z.valid_from == day for z in zones):
            valid = {z.zone_id: z for z in zones if z.valid_from <= day}  # the latest version of each zone
            relative = f"geo/zones/zones_{day.isoformat()}.geojson"
            drift = dropper.drifts(relative)
            doc = collection([zone_feature(z, drift) for z in valid.values()])
            dropper.drop("geo", "delivery_zones", relative, doc, spoil_feature)


def expected(truth: Truth, as_of: datetime | None = None) -> dict[str, int]:
    """Distinct customers located and zone versions published up to ``as_of``: a customer whose first order came
    after the last simulated day (a session begun before midnight) is in no day's file."""
    customers = {
        c.customer_id
        for c in truth["customers"]
        if c.created_at.date() <= truth.end and (as_of is None or c.created_at <= as_of)
    }
    zones = {
        (z.zone_id, z.valid_from) for z in truth["delivery_zones"] if as_of is None or z.valid_from <= as_of.date()
    }
    return {"geo_customer_locations": len(customers), "geo_delivery_zones": len(zones)}
