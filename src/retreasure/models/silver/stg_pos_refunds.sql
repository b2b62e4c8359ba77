-- Refunds at the tills: the export writes them as negative receipt lines (type 'refund') in the hour they
-- happened, so that quantity * unit_price - discount is minus the value refunded. Signs are dropped rather
-- than trusted: the type already says it is money going back.
WITH parsed AS (
    SELECT
        record_key AS source_record_key,
        json_extract_string(raw, '$.receipt_id') AS receipt_id,
        json_extract_string(raw, '$.line_no') AS line_no,
        TRY_CAST(json_extract_string(raw, '$.quantity') AS INTEGER) AS quantity,
        TRY_CAST(json_extract_string(raw, '$.unit_price') AS DECIMAL(18, 2)) AS unit_price,
        TRY_CAST(json_extract_string(raw, '$.discount') AS DECIMAL(18, 2)) AS discount,
        TRY_CAST(json_extract_string(raw, '$.tax') AS DECIMAL(18, 2)) AS tax,
        json_extract_string(raw, '$.currency') AS currency,
        TRY_CAST(json_extract_string(raw, '$.sold_at') AS TIMESTAMPTZ) AS refund_ts
    FROM @newest(
        bronze.pos_sales WHERE json_extract_string(raw, '$.type') = 'refund'
    )
)
SELECT
    -- The till refunds a receipt line at most once: the line and the type make the key, as in bronze.
    'pos:' || receipt_id || '/' || line_no || '/refund' AS refund_key,
    'pos:' || receipt_id AS order_key,
    'pos:' || receipt_id || '/' || line_no AS line_key,
    'pos' AS channel,
    refund_ts,
    CAST(refund_ts AT TIME ZONE 'UTC' AS DATE) AS refund_date,
    abs(quantity) AS quantity,
    CAST(abs(quantity * unit_price - discount) AS DECIMAL(18, 2)) AS amount,
    abs(tax) AS tax,
    currency,
    refund_ts AS updated_ts,
    source_record_key
FROM parsed
