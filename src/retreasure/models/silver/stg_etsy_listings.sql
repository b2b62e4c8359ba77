-- The Etsy shop's listings, newest version per listing_id. Etsy has no "changed since" filter for listings, so
-- every ingest reads them all and bronze holds a version per change; a window's run reads the versions that landed
-- in it and merges them into the table by listing (write mode merge: the newest updated_ts wins).
WITH parsed AS (
    SELECT
        record_key AS source_record_key,
        json_extract_string(raw, '$.listing_id') AS listing_id,
        json_extract_string(raw, '$.skus[0]') AS sku,
        json_extract_string(raw, '$.title') AS title,
        json_extract_string(raw, '$.state') AS state,
        TRY_CAST(json_extract_string(raw, '$.quantity') AS INTEGER) AS quantity,
        TRY_CAST(json_extract_string(raw, '$.price.amount') AS BIGINT) AS price_minor,
        -- Etsy Money is amount / divisor, the divisor a power of ten: scaled by an exact decimal, never a float.
        CASE json_extract_string(raw, '$.price.divisor')
            WHEN '1' THEN CAST(1 AS DECIMAL(18, 3))
            WHEN '10' THEN CAST(0.1 AS DECIMAL(18, 3))
            WHEN '100' THEN CAST(0.01 AS DECIMAL(18, 3))
            WHEN '1000' THEN CAST(0.001 AS DECIMAL(18, 3))
        END AS minor_unit,
        json_extract_string(raw, '$.price.currency_code') AS currency,
        TRY_CAST(json_extract_string(raw, '$.processing_min') AS INTEGER) AS processing_min_days,
        TRY_CAST(json_extract_string(raw, '$.processing_max') AS INTEGER) AS processing_max_days,
        -- The creation time under either of Etsy's two names (one may be missing from a drifted record).
        TRY_CAST(
            coalesce(json_extract_string(raw, '$.created_timestamp'), json_extract_string(raw, '$.creation_timestamp'))
            AS BIGINT
        ) AS created_epoch,
        TRY_CAST(
            coalesce(
                json_extract_string(raw, '$.updated_timestamp'), json_extract_string(raw, '$.last_modified_timestamp')
            ) AS BIGINT
        ) AS updated_epoch
    FROM @newest(bronze.etsy_listings)
)
SELECT
    'etsy:' || listing_id AS listing_key,
    listing_id,
    sku,
    title,
    state,
    quantity,
    CAST(price_minor * minor_unit AS DECIMAL(18, 2)) AS price,
    currency,
    processing_min_days,
    processing_max_days,
    to_timestamp(created_epoch) AS created_ts,
    to_timestamp(updated_epoch) AS updated_ts,
    source_record_key
FROM parsed
