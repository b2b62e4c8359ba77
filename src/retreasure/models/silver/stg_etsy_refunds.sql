-- Etsy refunds of the newest version of each receipt. Etsy lists refunds on the receipt, with no id, no line
-- and one amount, tax included. The key is the receipt and the refund's second; the value and the tax are split
-- back with the receipt's tax rate (one destination, one rate: for a refund of whole lines this is exact, as
-- total / (1 + rate) lies within half a minor unit of the value, never on a tie); the line is named only when
-- exactly one line of the receipt is worth, tax included, what was refunded.
WITH refunds AS (
    SELECT
        v.record_key AS source_record_key,
        json_extract_string(v.raw, '$.receipt_id') AS channel_order_id,
        TRY_CAST(json_extract_string(v.raw, '$.updated_timestamp') AS BIGINT) AS updated_epoch,
        json_extract_string(v.raw, '$.grandtotal.currency_code') AS currency,
        -- Money is amount / divisor; the divisor is a power of ten: minor units per unit of the currency.
        TRY_CAST(json_extract_string(u.r, '$.amount.divisor') AS BIGINT) AS per_unit,
        TRY_CAST(json_extract_string(u.r, '$.amount.amount') AS BIGINT) AS paid_back_minor,
        TRY_CAST(json_extract_string(u.r, '$.created_timestamp') AS BIGINT) AS refund_epoch
    -- The engine starts the window lookback_days (1) early: a change landed the day after it happened is read.
    FROM @newest(bronze.etsy_receipts) v
    CROSS JOIN unnest(TRY_CAST(json_extract(v.raw, '$.refunds') AS JSON[])) AS u (r)
),
keyed AS (
    SELECT
        *,
        -- Two refunds of one receipt in the same second keep apart by their order on the receipt.
        row_number() OVER (PARTITION BY channel_order_id, refund_epoch ORDER BY paid_back_minor) AS nth
    FROM refunds
),
order_rates AS (
    SELECT order_key, max(tax_rate) AS tax_rate FROM silver.stg_etsy_order_lines GROUP BY order_key
),
valued AS (
    SELECT
        k.*,
        CASE k.per_unit
            WHEN 1 THEN CAST(1 AS DECIMAL(18, 3))
            WHEN 10 THEN CAST(0.1 AS DECIMAL(18, 3))
            WHEN 100 THEN CAST(0.01 AS DECIMAL(18, 3))
            WHEN 1000 THEN CAST(0.001 AS DECIMAL(18, 3))
        END AS minor_unit,
        -- round(paid_back / (1 + rate)) on exact integers (minor units, rate in millionths).
        (2 * k.paid_back_minor * 1000000 + 1000000 + CAST(r.tax_rate * 1000000 AS BIGINT))
        // (2 * (1000000 + CAST(r.tax_rate * 1000000 AS BIGINT))) AS value_minor
    FROM keyed k
    LEFT JOIN order_rates r ON r.order_key = 'etsy:' || k.channel_order_id
),
matched AS (
    SELECT
        v.channel_order_id,
        v.refund_epoch,
        v.nth,
        min(l.line_key) AS line_key,
        min(l.quantity) AS quantity,
        count(*) AS lines
    FROM valued v
    JOIN silver.stg_etsy_order_lines l
        ON l.order_key = 'etsy:' || v.channel_order_id
        AND CAST((l.gross - l.discount + l.tax) * v.per_unit AS BIGINT) = v.paid_back_minor
    GROUP BY v.channel_order_id, v.refund_epoch, v.nth
)
SELECT
    'etsy:' || v.channel_order_id || '/' || CAST(v.refund_epoch AS VARCHAR)
    || CASE WHEN v.nth > 1 THEN '/' || CAST(v.nth AS VARCHAR) ELSE '' END AS refund_key,
    'etsy:' || v.channel_order_id AS order_key,
    CASE WHEN m.lines = 1 THEN m.line_key END AS line_key,
    'etsy' AS channel,
    to_timestamp(v.refund_epoch) AS refund_ts,
    CAST(to_timestamp(v.refund_epoch) AT TIME ZONE 'UTC' AS DATE) AS refund_date,
    CASE WHEN m.lines = 1 THEN m.quantity END AS quantity,
    CAST(v.value_minor * v.minor_unit AS DECIMAL(18, 2)) AS amount,
    CAST((v.paid_back_minor - v.value_minor) * v.minor_unit AS DECIMAL(18, 2)) AS tax,
    v.currency,
    to_timestamp(v.updated_epoch) AS updated_ts,
    v.source_record_key
FROM valued v
LEFT JOIN matched m ON m.channel_order_id = v.channel_order_id AND m.refund_epoch = v.refund_epoch AND m.nth = v.nth
