-- Shopify refunds, one row per refunded line item, from the newest version of each order, in the buyer's
-- (presentment) currency. A Shopify refund can return several line items at once; each gets its own row.
WITH refunds AS (
    SELECT
        record_key AS source_record_key,
        json_extract_string(raw, '$.legacyResourceId') AS channel_order_id,
        unnest(TRY_CAST(json_extract(raw, '$.refunds') AS VARCHAR[])) AS refund
    -- The engine starts the window lookback_days (1) early: changes stamped late on the day before are read.
    FROM @newest(bronze.shopify_orders)
),
items AS (
    SELECT
        source_record_key,
        channel_order_id,
        regexp_extract(json_extract_string(refund, '$.id'), '([0-9]+)$', 1) AS refund_id,
        TRY_CAST(json_extract_string(refund, '$.createdAt') AS TIMESTAMPTZ) AS refund_ts,
        TRY_CAST(coalesce(json_extract_string(refund, '$.updatedAt'), json_extract_string(refund, '$.createdAt'))
            AS TIMESTAMPTZ) AS updated_ts,
        unnest(TRY_CAST(json_extract(refund, '$.refundLineItems.nodes') AS VARCHAR[])) AS item
    FROM refunds
),
parsed AS (
    SELECT
        source_record_key,
        channel_order_id,
        refund_id,
        regexp_extract(json_extract_string(item, '$.lineItem.id'), '([0-9]+)$', 1) AS line_id,
        refund_ts,
        updated_ts,
        TRY_CAST(json_extract_string(item, '$.quantity') AS INTEGER) AS quantity,
        TRY_CAST(json_extract_string(item, '$.subtotalSet.presentmentMoney.amount') AS DECIMAL(18, 2)) AS amount,
        TRY_CAST(json_extract_string(item, '$.totalTaxSet.presentmentMoney.amount') AS DECIMAL(18, 2)) AS tax,
        json_extract_string(item, '$.subtotalSet.presentmentMoney.currencyCode') AS currency
    FROM items
)
SELECT
    'shopify:' || refund_id || '/' || line_id AS refund_key,
    'shopify:' || channel_order_id AS order_key,
    'shopify:' || line_id AS line_key,
    'shopify' AS channel,
    refund_ts,
    CAST(refund_ts AT TIME ZONE 'UTC' AS DATE) AS refund_date,
    quantity,
    amount,
    tax,
    currency,
    updated_ts,
    source_record_key
FROM parsed
