-- Shopify order lines from the newest version of each order, in the buyer's (presentment) currency.
WITH lines AS (
    SELECT
        record_key AS source_record_key,
        json_extract_string(raw, '$.legacyResourceId') AS channel_order_id,
        TRY_CAST(json_extract_string(raw, '$.createdAt') AS TIMESTAMPTZ) AS order_ts,
        TRY_CAST(json_extract_string(raw, '$.updatedAt') AS TIMESTAMPTZ) AS updated_ts,
        unnest(TRY_CAST(json_extract(raw, '$.lineItems.nodes') AS VARCHAR[])) AS line
    -- The engine starts the window lookback_days (1) early: changes stamped late on the day before are read.
    FROM @newest(bronze.shopify_orders)
),
-- A line can carry several tax lines (a US state and its county, say): the line's tax is all of them.
line_taxes AS (
    SELECT
        line_gid,
        CAST(sum(TRY_CAST(json_extract_string(tax_line, '$.priceSet.presentmentMoney.amount') AS DECIMAL(18, 2)))
            AS DECIMAL(18, 2)) AS tax,
        CAST(sum(TRY_CAST(json_extract_string(tax_line, '$.rate') AS DECIMAL(18, 6))) AS DECIMAL(18, 6)) AS tax_rate
    FROM (
        SELECT
            json_extract_string(line, '$.id') AS line_gid,
            unnest(TRY_CAST(json_extract(line, '$.taxLines') AS VARCHAR[])) AS tax_line
        FROM lines
    )
    GROUP BY line_gid
),
parsed AS (
    SELECT
        source_record_key,
        json_extract_string(line, '$.id') AS line_gid,
        regexp_extract(json_extract_string(line, '$.id'), '([0-9]+)$', 1) AS line_id,
        channel_order_id,
        json_extract_string(line, '$.sku') AS sku,
        TRY_CAST(json_extract_string(line, '$.quantity') AS INTEGER) AS quantity,
        TRY_CAST(json_extract_string(line, '$.originalUnitPriceSet.presentmentMoney.amount') AS DECIMAL(18, 2))
            AS unit_price,
        TRY_CAST(json_extract_string(line, '$.originalTotalSet.presentmentMoney.amount') AS DECIMAL(18, 2)) AS gross,
        TRY_CAST(json_extract_string(line, '$.totalDiscountSet.presentmentMoney.amount') AS DECIMAL(18, 2))
            AS discount,
        json_extract_string(line, '$.originalUnitPriceSet.presentmentMoney.currencyCode') AS currency,
        order_ts,
        updated_ts
    FROM lines
)
SELECT
    'shopify:' || p.line_id AS line_key,
    'shopify:' || p.channel_order_id AS order_key,
    'shopify' AS channel,
    p.sku,
    p.quantity,
    p.unit_price,
    p.gross,
    p.discount,
    -- No tax line means an untaxed line, not an unknown tax.
    coalesce(t.tax, CAST(0 AS DECIMAL(18, 2))) AS tax,
    coalesce(t.tax_rate, CAST(0 AS DECIMAL(18, 6))) AS tax_rate,
    p.currency,
    p.order_ts,
    CAST(p.order_ts AT TIME ZONE 'UTC' AS DATE) AS order_date,
    p.updated_ts,
    p.source_record_key
FROM parsed p
LEFT JOIN line_taxes t ON t.line_gid = p.line_gid
