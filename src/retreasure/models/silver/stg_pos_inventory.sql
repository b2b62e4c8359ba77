-- Stock movements at the stores: goods bought in, sold, and put back after a refund, as the tills log them.
WITH parsed AS (
    SELECT
        record_key AS source_record_key,
        json_extract_string(raw, '$.movement_id') AS movement_id,
        json_extract_string(raw, '$.store_id') AS store_id,
        json_extract_string(raw, '$.sku') AS sku,
        TRY_CAST(json_extract_string(raw, '$.at') AS TIMESTAMPTZ) AS moved_ts,
        TRY_CAST(json_extract_string(raw, '$.change') AS INTEGER) AS quantity_change,
        json_extract_string(raw, '$.reason') AS reason,
        TRY_CAST(json_extract_string(raw, '$.on_hand_after') AS INTEGER) AS on_hand_after,
        NULLIF(json_extract_string(raw, '$.receipt_id'), '') AS receipt_id,
        -- The ERP's purchase cost per unit, EUR, written on goods bought in; empty on other movements.
        TRY_CAST(NULLIF(json_extract_string(raw, '$.unit_cost'), '') AS DECIMAL(18, 2)) AS unit_cost
    FROM @newest(bronze.pos_inventory)
)
SELECT
    'pos:' || movement_id AS movement_key,
    movement_id,
    store_id,
    sku,
    moved_ts,
    CAST(moved_ts AT TIME ZONE 'UTC' AS DATE) AS moved_date,
    -- A store moves a few dozen items a day: a month is a partition of sensible size.
    CAST(date_trunc('month', moved_ts AT TIME ZONE 'UTC') AS DATE) AS moved_month,
    quantity_change,
    reason,
    on_hand_after,
    'pos:' || receipt_id AS order_key,
    unit_cost,
    moved_ts AS updated_ts,
    source_record_key
FROM parsed
