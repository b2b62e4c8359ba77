-- Delivery zones, one row per version: the GIS export re-sends every zone whenever one changes, each
-- stamped with the day its version took effect. A version holds until the zone's next one.
-- Read in full on every run (a small table): a version's end is the next version's start, wherever it landed.
WITH parsed AS (
    SELECT
        record_key AS source_record_key,
        json_extract_string(raw, '$.properties.zone_id') AS zone_id,
        json_extract_string(raw, '$.properties.name') AS name,
        TRY_CAST(json_extract_string(raw, '$.properties.valid_from') AS DATE) AS valid_from,
        TRY_CAST(json_extract_string(raw, '$.properties.fee') AS DECIMAL(18, 2)) AS fee,
        json_extract_string(raw, '$.properties.currency') AS currency,
        json_extract_string(raw, '$.geometry.type') AS geometry_type,
        -- Every ring of every polygon, as [lon, lat] positions: with the even-odd rule this one list answers
        -- point-in-zone for a Polygon with holes and for a MultiPolygon alike.
        CASE json_extract_string(raw, '$.geometry.type')
            WHEN 'Polygon' THEN from_json(json_extract(raw, '$.geometry.coordinates'), '[[["DOUBLE"]]]')
            WHEN 'MultiPolygon'
                THEN flatten(from_json(json_extract(raw, '$.geometry.coordinates'), '[[[["DOUBLE"]]]]'))
        END AS rings
    FROM @newest(bronze.geo_delivery_zones)
)
SELECT
    zone_id,
    valid_from,
    lead(valid_from) OVER (PARTITION BY zone_id ORDER BY valid_from) AS valid_to,
    name,
    fee,
    currency,
    geometry_type,
    rings[1] AS ring,
    rings,
    list_min(list_transform(flatten(rings), p -> p[1])) AS min_lon,
    list_min(list_transform(flatten(rings), p -> p[2])) AS min_lat,
    list_max(list_transform(flatten(rings), p -> p[1])) AS max_lon,
    list_max(list_transform(flatten(rings), p -> p[2])) AS max_lat,
    source_record_key
FROM parsed
