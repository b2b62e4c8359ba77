"""Geo drops: GeoJSON FeatureCollections (RFC 7946) of customer locations and delivery zones.

Any real FeatureCollection is accepted: features with or without ids or properties, every geometry type.
A feature without its business key is landed under "<file name>#<index>"; one with unusable coordinates is landed
and marked malformed. Input that is not GeoJSON, or over the file size limit, is refused with a clear error.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from retreasure.connectors.base import Entity, FileSource, RawRecord, SourceError
from retreasure.connectors.files import STRICT_JSON, file_date, load_json, origin_of

POSITION_DEPTH = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2, "MultiPolygon": 3}
FEATURES = re.compile(r'"features"\s*:\s*\[')


def coordinates_problem(coordinates: Any, depth: int) -> str | None:
    """Why nested coordinates are not positions (numbers, longitude first, latitude in [-90, 90]), or None."""
    stack = [(coordinates, depth)]
    while stack:
        node, level = stack.pop()
        if not isinstance(node, list):
            return f"coordinates hold {type(node).__name__} where an array belongs"
        if level > 0:
            stack.extend((child, level - 1) for child in node)
            continue
        if len(node) < 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in node):
            return f"position {json.dumps(node)[:60]} is not two or more numbers"
        # Longitudes past +-180 are tolerated: real files wrap the antimeridian (us-states.json's Alaska at -187).
        if not (-360 <= node[0] <= 360 and -90 <= node[1] <= 90):
            return f"position {json.dumps(node)[:60]} is out of range (longitude first)"
    return None


def geometry_problem(geometry: Any, nesting: int = 0) -> str | None:
    """Why a GeoJSON geometry is unusable, or None (a null geometry is allowed)."""
    if geometry is None:
        return None
    if not isinstance(geometry, dict):
        return "geometry is not an object"
    kind = geometry.get("type")
    if kind == "GeometryCollection":
        parts = geometry.get("geometries")
        if not isinstance(parts, list) or nesting > 4:
            return "GeometryCollection without a usable geometries array"
        return next((p for p in (geometry_problem(g, nesting + 1) for g in parts) if p), None)
    if kind not in POSITION_DEPTH:
        return f"unknown geometry type {kind!r}"
    return coordinates_problem(geometry.get("coordinates"), POSITION_DEPTH[kind])


def feature_problem(feature: Any) -> str | None:
    if not isinstance(feature, dict):
        return f"a JSON {type(feature).__name__}, not a GeoJSON Feature"
    if feature.get("type") != "Feature":
        return f"not a GeoJSON Feature (type {feature.get('type')!r})"
    if not isinstance(feature.get("properties") or {}, dict):
        return "properties is not an object"
    problem = geometry_problem(feature.get("geometry"))
    return f"malformed geometry: {problem}" if problem else None


class GeoSource(FileSource):
    """The GIS export: where customers are, and the delivery zones with their fees."""

    name = "geo"
    system = "GIS exports (GeoJSON)"
    entities = (
        Entity(
            "customer_locations",
            key="properties.customer_id",
            description="A customer's location as a GeoJSON Point (postal-code level), from the day they joined.",
            files="customers/*.geojson",
        ),
        Entity(
            "delivery_zones",
            key="properties.zone_id",  # the landed key is "<zone_id>/<valid_from>", set by read()
            description="Delivery zones as (Multi)Polygons with their shipping fee, one version per valid_from.",
            files="zones/*.geojson",
        ),
    )

    def read(self, entity: Entity, path: Path) -> Iterator[RawRecord]:
        size, limit = path.stat().st_size, self.settings.ingest.max_file_bytes
        if size > limit:  # read whole to be parsed: the file limit is what bounds it
            raise SourceError(self.name, f"{path.name}: refused: {size} bytes is over the {limit}-byte limit")
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SourceError(self.name, f"{path.name}: refused: not GeoJSON (not UTF-8 text: {exc})") from None
        origin = origin_of(self, path)
        try:
            document = load_json(text)
        except ValueError as exc:
            yield from self._salvage(entity, path, origin, text, exc)
            return
        if isinstance(document, dict) and document.get("type") == "FeatureCollection":
            features = document.get("features")
            if not isinstance(features, list):
                raise SourceError(self.name, f"{path.name}: refused: a FeatureCollection without a features array")
        elif isinstance(document, dict) and document.get("type") == "Feature":
            features = [document]
        else:
            kind = document.get("type") if isinstance(document, dict) else type(document).__name__
            raise SourceError(self.name, f"{path.name}: refused: not GeoJSON features (top-level type {kind!r})")
        for index, feature in enumerate(features):
            yield self._record(entity, feature, index, path, origin)

    def _record(self, entity: Entity, feature: Any, index: int, path: Path, origin: str) -> RawRecord:
        error = feature_problem(feature)
        properties = feature.get("properties") if isinstance(feature, dict) else None
        properties = properties if isinstance(properties, dict) else {}
        day = file_date(path)
        key: Any = None
        if entity.name == "delivery_zones":
            zone, since = properties.get("zone_id"), properties.get("valid_from")
            key = f"{zone}/{since}" if zone not in (None, "") and since not in (None, "") else None
            with contextlib.suppress(ValueError):
                day = date.fromisoformat(str(since)) if since else day
        else:
            key = properties.get("customer_id")
        # Not the feature's "id": real files repeat it (Natural Earth's "-99" for disputed lands).
        if key in (None, "") or isinstance(key, dict | list):
            key = f"{path.name}#{index}"
        payload = feature if isinstance(feature, dict) else json.dumps(feature)
        return RawRecord(payload, origin, error=error, key=str(key), partition_date=day)

    def _salvage(self, entity: Entity, path: Path, origin: str, text: str, cause: ValueError) -> Iterator[RawRecord]:
        """A FeatureCollection cut in transfer: land every whole feature before the cut, report the rest."""
        start = FEATURES.search(text)
        if not text.lstrip().startswith("{") or start is None:
            raise SourceError(self.name, f"{path.name}: refused: not GeoJSON ({cause})")
        position, index, blank = start.end(), 0, re.compile(r"[\s,]*")
        while True:
            position = blank.match(text, position).end()  # type: ignore[union-attr]
            if position >= len(text) or text[position] == "]":
                problem = "the file ends inside" if position >= len(text) else "the file breaks after"
                rest = text[position : position + self.settings.ingest.max_record_bytes]
                yield RawRecord(rest, origin, error=f"truncated: {problem} its features array ({cause})")
                return
            try:
                feature, position = STRICT_JSON.raw_decode(text, position)
            except (ValueError, RecursionError) as exc:
                rest = text[position : position + self.settings.ingest.max_record_bytes]
                yield RawRecord(rest, origin, error=f"truncated: feature #{index} is cut short or broken ({exc})")
                return
            yield self._record(entity, feature, index, path, origin)
            index += 1
