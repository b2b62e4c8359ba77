-- The payment gateway's events for web orders: authorisations, captures and refunds, one row each. The
-- gateway never edits an event; a re-delivered one is the same transaction.
WITH parsed AS (
    SELECT
        record_key AS source_record_key,
        json_extract_string(raw, '$.transaction_id') AS transaction_id,
        json_extract_string(raw, '$.order_id') AS order_id,
        lower(json_extract_string(raw, '$.status')) AS status,
        TRY_CAST(json_extract_string(raw, '$.amount') AS DECIMAL(18, 2)) AS amount,
        json_extract_string(raw, '$.currency') AS currency,
        TRY_CAST(json_extract_string(raw, '$.occurred_at') AS TIMESTAMPTZ) AS occurred_ts
    FROM @newest(bronze.web_transactions)
)
SELECT
    transaction_id,
    order_id,
    -- The gateway serves the web shop only, whose orders are Shopify's.
    'shopify:' || order_id AS order_key,
    status,
    amount,
    currency,
    occurred_ts,
    CAST(occurred_ts AT TIME ZONE 'UTC' AS DATE) AS occurred_date,
    occurred_ts AS updated_ts,
    source_record_key
FROM parsed
