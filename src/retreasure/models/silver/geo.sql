-- Customer locations with the delivery zone they fall in: a real point-in-polygon test (even-odd ray
-- casting over every edge of every ring) against the zone versions valid on the day the location was taken.
-- DuckDB's spatial extension is not available offline, and Spark has none built in, so the test is plain
-- SQL; it treats coordinates as planar (fine for zones that do not cross the antimeridian).
-- A window's run places the locations that landed in it and merges them into the table by customer (write mode
-- merge); a new zone version, which can move customers located long ago, rebuilds it whole.
WITH points AS (
    SELECT
        record_key AS source_record_key,
        json_extract_string(raw, '$.properties.customer_id') AS customer_id,
        -- The export is daily and its file's day is the day the location was taken.
        partition_date AS located_date,
        CASE WHEN json_extract_string(raw, '$.geometry.type') = 'Point'
            THEN TRY_CAST(json_extract_string(raw, '$.geometry.coordinates[0]') AS DOUBLE) END AS lon,
        CASE WHEN json_extract_string(raw, '$.geometry.type') = 'Point'
            THEN TRY_CAST(json_extract_string(raw, '$.geometry.coordinates[1]') AS DOUBLE) END AS lat,
        json_extract_string(raw, '$.properties.postal_code') AS postal_code,
        json_extract_string(raw, '$.properties.country_code') AS country,
        json_extract_string(raw, '$.properties.city') AS city
    -- A customer located again (a move) is where the latest file puts them.
    FROM @newest(bronze.geo_customer_locations, partition_date)
),
vertices AS (
    SELECT
        z.zone_id, z.valid_from, z.valid_to, z.min_lon, z.min_lat, z.max_lon, z.max_lat,
        r.ring_no, v.vertex_no, v.vertex[1] AS x, v.vertex[2] AS y
    FROM silver.delivery_zones z,
        unnest(z.rings) WITH ORDINALITY AS r(ring, ring_no),
        unnest(r.ring) WITH ORDINALITY AS v(vertex, vertex_no)
),
edges AS (
    -- Each vertex to the next; the last back to the first, which for a closed ring is a point and crosses nothing.
    SELECT
        zone_id, valid_from, valid_to, min_lon, min_lat, max_lon, max_lat,
        x AS x1, y AS y1,
        coalesce(lead(x) OVER ring_order, first_value(x) OVER ring_order) AS x2,
        coalesce(lead(y) OVER ring_order, first_value(y) OVER ring_order) AS y2
    FROM vertices
    WINDOW ring_order AS (PARTITION BY zone_id, valid_from, ring_no ORDER BY vertex_no)
),
inside AS (
    SELECT p.customer_id, e.zone_id, e.valid_from
    FROM points p
    JOIN edges e
        ON p.located_date >= e.valid_from
        AND (e.valid_to IS NULL OR p.located_date < e.valid_to)
        -- The bounding box only spares the ring test for points that cannot be inside.
        AND p.lon BETWEEN e.min_lon AND e.max_lon
        AND p.lat BETWEEN e.min_lat AND e.max_lat
    GROUP BY p.customer_id, e.zone_id, e.valid_from
    -- A ray from the point eastwards crosses the boundary an odd number of times iff the point is inside.
    HAVING count(*) FILTER (
        WHERE (e.y1 > p.lat) <> (e.y2 > p.lat)
            AND p.lon < e.x1 + (p.lat - e.y1) * (e.x2 - e.x1) / (e.y2 - e.y1)
    ) % 2 = 1
),
chosen AS (
    SELECT
        customer_id,
        zone_id,
        valid_from,
        count(*) OVER (PARTITION BY customer_id) AS zones_matched
    FROM inside
    -- Zones are meant not to overlap; if they do, the lowest zone id wins and zones_matched says so.
    QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY zone_id, valid_from) = 1
)
SELECT
    p.customer_id,
    p.located_date,
    p.lon,
    p.lat,
    p.postal_code,
    p.country,
    p.city,
    c.zone_id,
    c.valid_from AS zone_valid_from,
    CAST(coalesce(c.zones_matched, 0) AS INTEGER) AS zones_matched,
    p.source_record_key
FROM points p
LEFT JOIN chosen c ON c.customer_id = p.customer_id
