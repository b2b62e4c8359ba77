-- eBay refunds of the newest version of each order. eBay states each refund as one amount, tax included; the
-- value and the tax are split back with the refunded line's tax rate (for a refund of whole lines this is
-- exact: the amount is the line value v plus round(v x rate), and total / (1 + rate) lies within half a minor
-- unit of v, never on a tie).
WITH orders AS (
    SELECT
        record_key AS source_record_key,
        raw,
        json_extract_string(raw, '$.orderId') AS channel_order_id,
        TRY_CAST(json_extract_string(raw, '$.lastModifiedDate') AS TIMESTAMPTZ) AS updated_ts,
        json_extract_string(raw, '$.pricingSummary.total.currency') AS currency
    -- The engine starts the window lookback_days (1) early: a change landed the day after it happened is read.
    FROM @newest(bronze.ebay_orders)
),
payments AS (
    SELECT
        o.channel_order_id,
        json_extract_string(u.r, '$.refundId') AS refund_id,
        json_extract_string(u.r, '$.refundDate') AS refund_date_text,
        json_extract_string(u.r, '$.amount.value') AS amount_text,
        json_extract_string(u.r, '$.refundStatus') AS status
    FROM orders o
    CROSS JOIN unnest(TRY_CAST(json_extract(o.raw, '$.paymentSummary.refunds') AS JSON[])) AS u (r)
),
by_line AS (
    -- The same refunds under the line item they give money back for.
    SELECT
        o.channel_order_id,
        json_extract_string(i.item, '$.lineItemId') AS line_id,
        json_extract_string(r.r, '$.refundId') AS refund_id,
        json_extract_string(r.r, '$.refundDate') AS refund_date_text,
        json_extract_string(r.r, '$.amount.value') AS amount_text
    FROM orders o
    CROSS JOIN unnest(TRY_CAST(json_extract(o.raw, '$.lineItems') AS JSON[])) AS i (item)
    CROSS JOIN unnest(TRY_CAST(json_extract(i.item, '$.refunds') AS JSON[])) AS r (r)
),
refunds AS (
    SELECT
        coalesce(p.channel_order_id, l.channel_order_id) AS channel_order_id,
        coalesce(p.refund_id, l.refund_id) AS refund_id,
        l.line_id,
        TRY_CAST(coalesce(p.refund_date_text, l.refund_date_text) AS TIMESTAMPTZ) AS refund_ts,
        TRY_CAST(coalesce(p.amount_text, l.amount_text) AS DECIMAL(18, 2)) AS paid_back
    FROM payments p
    FULL OUTER JOIN by_line l ON l.channel_order_id = p.channel_order_id AND l.refund_id = p.refund_id
    -- PENDING and FAILED refunds have not given money back (yet).
    WHERE coalesce(p.status, 'REFUNDED') = 'REFUNDED'
),
order_rates AS (
    -- An order is taxed at one destination's rate: what an order-level refund is split with.
    SELECT order_key, max(tax_rate) AS tax_rate FROM silver.stg_ebay_order_lines GROUP BY order_key
),
split AS (
    SELECT
        r.*,
        o.updated_ts,
        o.currency,
        o.source_record_key,
        l.quantity AS line_quantity,
        l.gross - l.discount AS line_value,
        coalesce(l.tax_rate, orr.tax_rate) AS tax_rate,
        -- Minor units per unit of the currency (ISO 4217: a few currencies have no decimals).
        CASE WHEN o.currency IN ('JPY', 'KRW', 'ISK', 'CLP', 'VND', 'PYG', 'UGX', 'XAF', 'XOF') THEN 1 ELSE 100 END
            AS per_unit
    FROM refunds r
    JOIN orders o ON o.channel_order_id = r.channel_order_id
    LEFT JOIN silver.stg_ebay_order_lines l ON l.line_key = 'ebay:' || r.line_id
    LEFT JOIN order_rates orr ON orr.order_key = 'ebay:' || r.channel_order_id
),
valued AS (
    SELECT
        s.*,
        CASE s.per_unit WHEN 1 THEN CAST(1 AS DECIMAL(18, 2)) ELSE CAST(0.01 AS DECIMAL(18, 2)) END AS minor_unit,
        -- round(paid_back / (1 + rate)) on exact integers (minor units, rate in millionths).
        (
            2 * CAST(s.paid_back * s.per_unit AS BIGINT) * 1000000 + 1000000 + CAST(s.tax_rate * 1000000 AS BIGINT)
        ) // (2 * (1000000 + CAST(s.tax_rate * 1000000 AS BIGINT))) AS value_minor
    FROM split s
)
SELECT
    'ebay:' || refund_id AS refund_key,
    'ebay:' || channel_order_id AS order_key,
    'ebay:' || line_id AS line_key,
    'ebay' AS channel,
    refund_ts,
    CAST(refund_ts AT TIME ZONE 'UTC' AS DATE) AS refund_date,
    -- eBay does not say how many units went back: all of the line's when its whole value was refunded.
    CASE WHEN CAST(value_minor * minor_unit AS DECIMAL(18, 2)) = line_value THEN line_quantity END AS quantity,
    CAST(value_minor * minor_unit AS DECIMAL(18, 2)) AS amount,
    CAST(paid_back - value_minor * minor_unit AS DECIMAL(18, 2)) AS tax,
    currency,
    updated_ts,
    source_record_key
FROM valued
