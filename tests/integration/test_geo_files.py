"""The geo connector on arbitrary real-world GeoJSON, and on input it must refuse."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from retreasure.connectors.base import SourceError
from retreasure.connectors.geo import GeoSource
from retreasure.settings import Settings

SAMPLES = os.environ.get("RETREASURE_GEO_SAMPLES")
# Feature counts of the public samples the brief names; any other file only has to read cleanly.
KNOWN_COUNTS = {"us-states.json": 52, "countries.geojson": 179}


@pytest.fixture
def geo(tmp_path: Path) -> GeoSource:
    return GeoSource(Settings(_env_file=None, landing_dir=tmp_path))  # type: ignore[call-arg]


def write(folder: Path, name: str, document: object) -> Path:
    path = folder / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def test_any_feature_shape_is_landed_and_keyed(geo: GeoSource, tmp_path: Path) -> None:
    square = [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]
    features = [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [13.4, 52.5]}},  # no id, no properties
        {"type": "Feature", "id": 7, "properties": None, "geometry": {"type": "MultiPolygon", "coordinates": [square]}},
        {"type": "Feature", "properties": {"customer_id": "C1"}, "geometry": None},
        {
            "type": "Feature",
            "properties": {"name": "mixed"},
            "geometry": {
                "type": "GeometryCollection",
                "geometries": [
                    {"type": "LineString", "coordinates": [[0, 0], [2, 2]]},
                    {"type": "Polygon", "coordinates": square},
                ],
            },
        },
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [52.5, 190.0]}},
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": ["13,4", "52,5"]}},
        {"type": "Topology"},
    ]
    path = write(tmp_path, "mixed.geojson", {"type": "FeatureCollection", "features": features, "bbox": [0, 0, 2, 2]})
    records = list(geo.read(geo.entity("customer_locations"), path))
    assert [r.key for r in records] == [f"mixed.geojson#{i}" for i in (0, 1)] + ["C1"] + [
        f"mixed.geojson#{i}" for i in (3, 4, 5, 6)
    ]
    assert [r.error for r in records[:4]] == [None] * 4
    assert "out of range" in (records[4].error or "") and "not two or more numbers" in (records[5].error or "")
    assert "not a GeoJSON Feature" in (records[6].error or "")
    assert records[0].payload == features[0]  # as received


def test_zone_versions_are_keyed_by_zone_and_day(geo: GeoSource, tmp_path: Path) -> None:
    zone = {"zone_id": "Z-DE", "fee": "5.90", "currency": "EUR", "valid_from": "2025-06-30"}
    path = write(
        tmp_path,
        "zones_2025-06-30.geojson",
        {
            "type": "Feature",
            "properties": zone,
            "geometry": {"type": "Polygon", "coordinates": [[[7, 47], [15, 47], [15, 55], [7, 47]]]},
        },
    )
    [record] = geo.read(geo.entity("delivery_zones"), path)
    assert (record.key, str(record.partition_date), record.error) == ("Z-DE/2025-06-30", "2025-06-30", None)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("just,some,csv\n1,2,3\n", "not GeoJSON"),
        ("[1, 2, 3]", "top-level type 'list'"),
        ('{"type": "Topology", "objects": {}}', "top-level type 'Topology'"),
        ('{"type": "FeatureCollection", "features": {}}', "without a features array"),
        ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
        ('{"type": "Feature", "geometry": null, "properties": {"x": NaN}}', "NaN is not JSON"),
    ],
    ids=["csv", "array", "topology", "features-object", "deep-nesting", "nan"],
)
def test_non_geojson_is_refused_with_a_clear_error(geo: GeoSource, tmp_path: Path, content: str, reason: str) -> None:
    path = write(tmp_path, "input.geojson", content)
    with pytest.raises(SourceError, match=rf"geo: input.geojson: refused: .*{reason}"):
        list(geo.read(geo.entity("delivery_zones"), path))


def test_oversize_input_is_refused_before_it_is_read(geo: GeoSource, tmp_path: Path) -> None:
    path = tmp_path / "huge.geojson"
    with path.open("wb") as handle:
        handle.truncate(geo.settings.ingest.max_file_bytes + 1)  # sparse: costs no disk
    with pytest.raises(SourceError, match=r"huge.geojson: refused: .*over the 104857600-byte limit"):
        next(geo.read(geo.entity("customer_locations"), path))


def test_a_cut_collection_lands_its_whole_features(geo: GeoSource, tmp_path: Path) -> None:
    features = [
        {
            "type": "Feature",
            "properties": {"customer_id": f"C{i}"},
            "geometry": {"type": "Point", "coordinates": [i, i]},
        }
        for i in range(5)
    ]
    text = json.dumps({"type": "FeatureCollection", "features": features})
    path = write(tmp_path, "customers_2025-03-04.geojson", text[: text.index('"C4"') + 2])
    records = list(geo.read(geo.entity("customer_locations"), path))
    assert [r.key for r in records[:4]] == ["C0", "C1", "C2", "C3"] and records[3].error is None
    assert len(records) == 5 and (records[4].error or "").startswith("truncated: feature #4")
    assert str(records[0].partition_date) == "2025-03-04"


@pytest.mark.skipif(not SAMPLES, reason="set RETREASURE_GEO_SAMPLES to a folder of real GeoJSON files")
def test_real_geojson_samples_are_read() -> None:
    folder = Path(SAMPLES or "")
    paths = sorted([*folder.glob("*.json"), *folder.glob("*.geojson")])
    assert paths, f"no *.json or *.geojson in {folder}"
    geo = GeoSource(Settings(_env_file=None, landing_dir=folder))  # type: ignore[call-arg]
    for path in paths:
        for entity in geo.entities:
            records = list(geo.read(entity, path))
            assert records and all(r.error is None for r in records), [r.error for r in records if r.error][:3]
            assert len({r.key for r in records}) == len(records)  # every feature keyed, none lost to a clash
            if path.name in KNOWN_COUNTS:
                assert len(records) == KNOWN_COUNTS[path.name]
