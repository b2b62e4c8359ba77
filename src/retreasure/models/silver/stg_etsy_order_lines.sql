-- Etsy transactions (purchased listings) of the newest version of each receipt. Etsy states tax and discounts
-- only for the whole receipt, so a line's tax is its value after discount times the destination's rate, rounded
-- half to even as the business charged it; the receipt's discount (Etsy coupons) is shared out in proportion
-- to the lines' value, the cent left over going to the largest line.
WITH tax_rates AS (
    SELECT country, region, rate FROM silver.tax_rates
),
receipts AS (
    SELECT
        record_key AS source_record_key,
        raw,
        json_extract_string(raw, '$.receipt_id') AS channel_order_id,
        TRY_CAST(json_extract_string(raw, '$.create_timestamp') AS BIGINT) AS created_epoch,
        TRY_CAST(json_extract_string(raw, '$.updated_timestamp') AS BIGINT) AS updated_epoch,
        json_extract_string(raw, '$.grandtotal.currency_code') AS currency,
        -- Money is amount / divisor; the divisor is a power of ten: minor units per unit of the currency.
        TRY_CAST(json_extract_string(raw, '$.grandtotal.divisor') AS BIGINT) AS per_unit,
        TRY_CAST(json_extract_string(raw, '$.total_price.amount') AS BIGINT) AS subtotal_minor,
        coalesce(TRY_CAST(json_extract_string(raw, '$.discount_amt.amount') AS BIGINT), 0) AS discount_minor,
        json_extract_string(raw, '$.country_iso') AS country,
        CASE
            WHEN json_extract_string(raw, '$.country_iso') = 'US' THEN coalesce(json_extract_string(raw, '$.state'), '')
            ELSE ''
        END AS region
    -- The engine starts the window lookback_days (1) early: a change landed the day after it happened is read.
    FROM @newest(bronze.etsy_receipts)
),
transactions AS (
    SELECT
        r.*,
        json_extract_string(u.t, '$.transaction_id') AS transaction_id,
        json_extract_string(u.t, '$.sku') AS sku,
        TRY_CAST(json_extract_string(u.t, '$.quantity') AS INTEGER) AS quantity,
        TRY_CAST(json_extract_string(u.t, '$.price.amount') AS BIGINT) AS unit_minor
    FROM receipts r
    CROSS JOIN unnest(TRY_CAST(json_extract(r.raw, '$.transactions') AS JSON[])) AS u (t)
),
shared AS (
    SELECT
        t.*,
        t.unit_minor * t.quantity AS gross_minor,
        CASE WHEN t.subtotal_minor > 0 THEN t.discount_minor * t.unit_minor * t.quantity // t.subtotal_minor ELSE 0 END
            AS share_minor,
        row_number() OVER (
            PARTITION BY t.channel_order_id ORDER BY t.unit_minor * t.quantity DESC, t.transaction_id
        ) AS size_rank
    FROM transactions t
),
discounted AS (
    SELECT
        s.*,
        s.share_minor + CASE
            WHEN s.size_rank = 1 THEN s.discount_minor - sum(s.share_minor) OVER (PARTITION BY s.channel_order_id)
            ELSE 0
        END AS line_discount_minor
    FROM shared s
),
rated AS (
    SELECT
        d.*,
        r.rate AS tax_rate,
        -- (line value after discount) x rate, in minor units x 10^6: exact integers, no binary fractions.
        (d.gross_minor - d.line_discount_minor) * CAST(r.rate * 1000000 AS BIGINT) AS tax_micro,
        CASE d.per_unit
            WHEN 1 THEN CAST(1 AS DECIMAL(18, 3))
            WHEN 10 THEN CAST(0.1 AS DECIMAL(18, 3))
            WHEN 100 THEN CAST(0.01 AS DECIMAL(18, 3))
            WHEN 1000 THEN CAST(0.001 AS DECIMAL(18, 3))
        END AS minor_unit
    FROM discounted d
    LEFT JOIN tax_rates r ON r.country = d.country AND r.region = d.region
)
SELECT
    'etsy:' || transaction_id AS line_key,
    'etsy:' || channel_order_id AS order_key,
    'etsy' AS channel,
    sku,
    quantity,
    CAST(unit_minor * minor_unit AS DECIMAL(18, 2)) AS unit_price,
    CAST(gross_minor * minor_unit AS DECIMAL(18, 2)) AS gross,
    CAST(line_discount_minor * minor_unit AS DECIMAL(18, 2)) AS discount,
    -- Half to even, as the business (and its payment systems) round.
    CAST(
        (
            tax_micro // 1000000
            + CASE
                WHEN tax_micro % 1000000 > 500000 THEN 1
                WHEN tax_micro % 1000000 = 500000 AND (tax_micro // 1000000) % 2 = 1 THEN 1
                ELSE 0
            END
        ) * minor_unit AS DECIMAL(18, 2)
    ) AS tax,
    tax_rate,
    currency,
    to_timestamp(created_epoch) AS order_ts,
    CAST(to_timestamp(created_epoch) AT TIME ZONE 'UTC' AS DATE) AS order_date,
    to_timestamp(updated_epoch) AS updated_ts,
    source_record_key
FROM rated
