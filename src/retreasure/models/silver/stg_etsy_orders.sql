-- Etsy receipts, newest version per receipt_id, in the conformed order shape. Etsy splits the tax it shows
-- (US sales tax in total_tax_cost, VAT elsewhere in total_vat_cost): tax is both. Money is amount / divisor.
WITH marketplace_remits AS (
    -- Versioned business configuration: the destinations where Etsy collects and remits the tax itself
    -- (marketplace-facilitator rules); the seller owes it everywhere else. Etsy's receipts carry no flag.
    SELECT country FROM (VALUES ('US'), ('GB')) AS t (country)
),
parsed AS (
    SELECT
        record_key AS source_record_key,
        json_extract_string(raw, '$.receipt_id') AS channel_order_id,
        json_extract_string(raw, '$.buyer_email') AS customer_token,
        TRY_CAST(json_extract_string(raw, '$.create_timestamp') AS BIGINT) AS created_epoch,
        TRY_CAST(json_extract_string(raw, '$.updated_timestamp') AS BIGINT) AS updated_epoch,
        -- Sent by some receipts only; otherwise the listings' processing time gives the promise.
        TRY_CAST(json_extract_string(raw, '$.expected_ship_timestamp') AS BIGINT) AS expected_ship_epoch,
        json_extract_string(raw, '$.grandtotal.currency_code') AS currency,
        -- Every Money of a receipt is in its currency, so one divisor (a power of ten) scales them all exactly.
        CASE json_extract_string(raw, '$.grandtotal.divisor')
            WHEN '1' THEN CAST(1 AS DECIMAL(18, 3))
            WHEN '10' THEN CAST(0.1 AS DECIMAL(18, 3))
            WHEN '100' THEN CAST(0.01 AS DECIMAL(18, 3))
            WHEN '1000' THEN CAST(0.001 AS DECIMAL(18, 3))
        END AS minor_unit,
        TRY_CAST(json_extract_string(raw, '$.total_price.amount') AS BIGINT) AS subtotal_minor,
        TRY_CAST(json_extract_string(raw, '$.discount_amt.amount') AS BIGINT) AS discount_minor,
        TRY_CAST(json_extract_string(raw, '$.total_shipping_cost.amount') AS BIGINT) AS shipping_minor,
        TRY_CAST(json_extract_string(raw, '$.total_tax_cost.amount') AS BIGINT) AS sales_tax_minor,
        TRY_CAST(json_extract_string(raw, '$.total_vat_cost.amount') AS BIGINT) AS vat_minor,
        TRY_CAST(json_extract_string(raw, '$.grandtotal.amount') AS BIGINT) AS total_minor,
        json_extract_string(raw, '$.country_iso') AS country,
        json_extract_string(raw, '$.state') AS state,
        json_extract_string(raw, '$.transactions[*].listing_id') AS listing_ids
    -- The engine starts the window lookback_days (1) early: a change landed the day after it happened is read.
    FROM @newest(bronze.etsy_receipts)
),
processing AS (
    -- Etsy promises dispatch within the longest processing time of the receipt's listings.
    SELECT p.channel_order_id, max(l.processing_max_days) AS max_days
    FROM parsed p
    CROSS JOIN unnest(p.listing_ids) AS u (listing_id)
    JOIN silver.stg_etsy_listings l ON l.listing_id = u.listing_id
    GROUP BY p.channel_order_id
)
SELECT
    'etsy:' || p.channel_order_id AS order_key,
    'etsy' AS channel,
    p.channel_order_id,
    CAST(NULL AS VARCHAR) AS store_id,
    p.customer_token,
    to_timestamp(p.created_epoch) AS order_ts,
    CAST(to_timestamp(p.created_epoch) AT TIME ZONE 'UTC' AS DATE) AS order_date,
    to_timestamp(p.updated_epoch) AS updated_ts,
    p.currency,
    CAST(p.subtotal_minor * p.minor_unit AS DECIMAL(18, 2)) AS subtotal,
    CAST(coalesce(p.discount_minor, 0) * p.minor_unit AS DECIMAL(18, 2)) AS discount,
    CAST(coalesce(p.shipping_minor, 0) * p.minor_unit AS DECIMAL(18, 2)) AS shipping,
    CAST((coalesce(p.sales_tax_minor, 0) + coalesce(p.vat_minor, 0)) * p.minor_unit AS DECIMAL(18, 2)) AS tax,
    CAST(p.total_minor * p.minor_unit AS DECIMAL(18, 2)) AS total,
    CASE WHEN m.country IS NULL THEN 'seller' ELSE 'marketplace' END AS tax_party,
    p.country AS tax_country,
    -- A US state is a tax jurisdiction of its own; elsewhere the country is.
    CASE WHEN p.country = 'US' THEN coalesce(p.state, '') ELSE '' END AS tax_region,
    p.country AS ship_country,
    to_timestamp(coalesce(p.expected_ship_epoch, p.created_epoch + pr.max_days * 86400)) AS ship_by_ts,
    CAST(NULL AS VARCHAR) AS discount_code,
    CAST(NULL AS VARCHAR) AS session_id,
    CAST(NULL AS VARCHAR) AS campaign,
    p.source_record_key
FROM parsed p
LEFT JOIN marketplace_remits m ON m.country = p.country
LEFT JOIN processing pr ON pr.channel_order_id = p.channel_order_id
