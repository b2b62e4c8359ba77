-- Receipt lines sold at the stores' tills. Refunds come as their own negative lines (stg_pos_refunds), so a
-- receipt line is never edited: the newest landing of each is kept only to absorb a re-exported file.
WITH parsed AS (
    SELECT
        record_key AS source_record_key,
        json_extract_string(raw, '$.type') AS line_type,
        json_extract_string(raw, '$.receipt_id') AS receipt_id,
        json_extract_string(raw, '$.line_no') AS line_no,
        json_extract_string(raw, '$.sku') AS sku,
        TRY_CAST(json_extract_string(raw, '$.quantity') AS INTEGER) AS quantity,
        TRY_CAST(json_extract_string(raw, '$.unit_price') AS DECIMAL(18, 2)) AS unit_price,
        TRY_CAST(json_extract_string(raw, '$.discount') AS DECIMAL(18, 2)) AS discount,
        TRY_CAST(json_extract_string(raw, '$.tax') AS DECIMAL(18, 2)) AS tax,
        TRY_CAST(json_extract_string(raw, '$.tax_rate') AS DECIMAL(18, 6)) AS tax_rate,
        json_extract_string(raw, '$.currency') AS currency,
        -- Local time with its offset: the cast keeps the instant, whatever the session's time zone.
        TRY_CAST(json_extract_string(raw, '$.sold_at') AS TIMESTAMPTZ) AS sold_ts
    -- bronze partitions are the store's local date; every line of a receipt shares its sold_at.
    -- Every line but refunds (stg_pos_refunds): a line of an unknown or missing type comes here too, and its
    -- line_type sends it to quarantine with a reason rather than letting it vanish.
    FROM @newest(
        bronze.pos_sales WHERE json_extract_string(raw, '$.type') IS DISTINCT FROM 'refund'
    )
)
SELECT
    'pos:' || receipt_id || '/' || line_no AS line_key,
    'pos:' || receipt_id AS order_key,
    'pos' AS channel,
    line_type,
    sku,
    quantity,
    unit_price,
    CAST(unit_price * quantity AS DECIMAL(18, 2)) AS gross,
    discount,
    tax,
    tax_rate,
    currency,
    sold_ts AS order_ts,
    CAST(sold_ts AT TIME ZONE 'UTC' AS DATE) AS order_date,
    sold_ts AS updated_ts,
    source_record_key
FROM parsed
