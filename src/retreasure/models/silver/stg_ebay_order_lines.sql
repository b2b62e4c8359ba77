-- eBay line items of the newest version of each order. The line carrying the order's shipping (eBay puts it on
-- one line item) also carries the tax on that shipping, in one amount; the conformed line tax excludes it, so
-- that line's own tax is recomputed from its value and the jurisdiction's rate, as the business charged it.
-- Every other line's tax is taken as sent.
WITH tax_rates AS (
    SELECT country, region, rate FROM silver.tax_rates
),
orders AS (
    SELECT
        record_key AS source_record_key,
        raw,
        json_extract_string(raw, '$.orderId') AS channel_order_id,
        TRY_CAST(json_extract_string(raw, '$.creationDate') AS TIMESTAMPTZ) AS order_ts,
        TRY_CAST(json_extract_string(raw, '$.lastModifiedDate') AS TIMESTAMPTZ) AS updated_ts,
        json_extract_string(raw, '$.pricingSummary.total.currency') AS currency,
        coalesce(
            json_extract_string(raw, '$.buyer.taxAddress.countryCode'),
            json_extract_string(raw, '$.fulfillmentStartInstructions[0].shippingStep.shipTo.contactAddress.countryCode')
        ) AS tax_country,
        json_extract_string(raw, '$.buyer.taxAddress.stateOrProvince') AS tax_state
    -- The engine starts the window lookback_days (1) early: a change landed the day after it happened is read.
    FROM @newest(bronze.ebay_orders)
),
items AS (
    SELECT
        o.*,
        json_extract_string(u.item, '$.lineItemId') AS line_id,
        json_extract_string(u.item, '$.sku') AS sku,
        TRY_CAST(json_extract_string(u.item, '$.quantity') AS INTEGER) AS quantity,
        TRY_CAST(json_extract_string(u.item, '$.lineItemCost.value') AS DECIMAL(18, 2)) AS gross,
        TRY_CAST(json_extract_string(u.item, '$.discountedLineItemCost.value') AS DECIMAL(18, 2)) AS discounted,
        coalesce(
            list_sum(TRY_CAST(json_extract_string(u.item, '$.taxes[*].amount.value') AS DECIMAL(18, 2)[])), 0
        ) AS sent_tax,
        coalesce(
            TRY_CAST(json_extract_string(u.item, '$.deliveryCost.shippingCost.value') AS DECIMAL(18, 2)), 0
        ) AS line_shipping
    FROM orders o
    CROSS JOIN unnest(TRY_CAST(json_extract(o.raw, '$.lineItems') AS JSON[])) AS u (item)
),
priced AS (
    SELECT
        i.*,
        CASE WHEN i.tax_country = 'US' THEN coalesce(i.tax_state, '') ELSE '' END AS tax_region,
        gross - coalesce(discounted, gross) AS discount,
        -- Minor units per unit of the currency (ISO 4217: a few currencies have no decimals), so that rounding
        -- is done on exact integers.
        CASE WHEN currency IN ('JPY', 'KRW', 'ISK', 'CLP', 'VND', 'PYG', 'UGX', 'XAF', 'XOF') THEN 1 ELSE 100 END
            AS per_unit
    FROM items i
),
minor AS (
    SELECT *, CASE per_unit WHEN 1 THEN CAST(1 AS DECIMAL(18, 2)) ELSE CAST(0.01 AS DECIMAL(18, 2)) END AS minor_unit
    FROM priced
),
rated AS (
    SELECT
        p.*,
        r.rate AS tax_rate,
        -- (line value after discount) x rate, in minor units x 10^6: exact integers, no binary fractions.
        CAST(coalesce(discounted, gross) * per_unit AS BIGINT) * CAST(r.rate * 1000000 AS BIGINT) AS tax_micro
    FROM minor p
    LEFT JOIN tax_rates r ON r.country = p.tax_country AND r.region = p.tax_region
)
SELECT
    'ebay:' || line_id AS line_key,
    'ebay:' || channel_order_id AS order_key,
    'ebay' AS channel,
    sku,
    quantity,
    CAST((CAST(gross * per_unit AS BIGINT) // quantity) * minor_unit AS DECIMAL(18, 2)) AS unit_price,
    gross,
    discount,
    CAST(CASE
        WHEN line_shipping = 0 THEN sent_tax
        -- Half to even, as the business (and its payment systems) round.
        ELSE CAST(
            (
                tax_micro // 1000000
                + CASE
                    WHEN tax_micro % 1000000 > 500000 THEN 1
                    WHEN tax_micro % 1000000 = 500000 AND (tax_micro // 1000000) % 2 = 1 THEN 1
                    ELSE 0
                END
            ) * minor_unit AS DECIMAL(18, 2)
        )
    END AS DECIMAL(18, 2)) AS tax,
    tax_rate,
    currency,
    order_ts,
    CAST(order_ts AT TIME ZONE 'UTC' AS DATE) AS order_date,
    updated_ts,
    source_record_key
FROM rated
