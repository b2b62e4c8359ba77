-- Store receipts as orders: the POS exports only lines, so each receipt's amounts are the sum of its sale
-- lines. In store nothing ships and the store's own jurisdiction taxes the sale, which the seller remits.
WITH lines AS (
    SELECT
        record_key,
        json_extract_string(raw, '$.receipt_id') AS receipt_id,
        json_extract_string(raw, '$.store_id') AS store_id,
        -- The loyalty e-mail is already a token; an empty cell is an anonymous walk-in.
        NULLIF(json_extract_string(raw, '$.loyalty_email'), '') AS customer_token,
        TRY_CAST(json_extract_string(raw, '$.sold_at') AS TIMESTAMPTZ) AS sold_ts,
        json_extract_string(raw, '$.currency') AS currency,
        TRY_CAST(json_extract_string(raw, '$.quantity') AS INTEGER) AS quantity,
        TRY_CAST(json_extract_string(raw, '$.unit_price') AS DECIMAL(18, 2)) AS unit_price,
        TRY_CAST(json_extract_string(raw, '$.discount') AS DECIMAL(18, 2)) AS discount,
        TRY_CAST(json_extract_string(raw, '$.tax') AS DECIMAL(18, 2)) AS tax,
        NULLIF(json_extract_string(raw, '$.discount_code'), '') AS discount_code
    -- bronze partitions are the store's local date; every line of a receipt shares its sold_at.
    FROM @newest(
        bronze.pos_sales WHERE json_extract_string(raw, '$.type') = 'sale'
    )
),
receipts AS (
    SELECT
        receipt_id,
        min(store_id) AS store_id,
        max(customer_token) AS customer_token,
        min(sold_ts) AS order_ts,
        max(sold_ts) AS updated_ts,
        min(currency) AS currency,
        -- A line that did not parse must not make its receipt look smaller: NULL it, so not_null catches it.
        CASE WHEN count(*) = count(unit_price * quantity) THEN sum(unit_price * quantity) END AS subtotal,
        CASE WHEN count(*) = count(discount) THEN sum(discount) END AS discount,
        CASE WHEN count(*) = count(tax) THEN sum(tax) END AS tax,
        max(discount_code) AS discount_code,
        list(record_key ORDER BY record_key) AS source_record_keys
    FROM lines
    GROUP BY receipt_id
)
SELECT
    'pos:' || r.receipt_id AS order_key,
    'pos' AS channel,
    r.receipt_id AS channel_order_id,
    r.store_id,
    r.customer_token,
    r.order_ts,
    CAST(r.order_ts AT TIME ZONE 'UTC' AS DATE) AS order_date,
    r.updated_ts,
    r.currency,
    CAST(r.subtotal AS DECIMAL(18, 2)) AS subtotal,
    CAST(r.discount AS DECIMAL(18, 2)) AS discount,
    CAST(0 AS DECIMAL(18, 2)) AS shipping,
    CAST(r.tax AS DECIMAL(18, 2)) AS tax,
    CAST(r.subtotal - r.discount + r.tax AS DECIMAL(18, 2)) AS total,
    'seller' AS tax_party,
    s.country AS tax_country,
    s.region AS tax_region,
    CAST(NULL AS VARCHAR) AS ship_country,
    CAST(NULL AS TIMESTAMPTZ) AS ship_by_ts,
    r.discount_code,
    CAST(NULL AS VARCHAR) AS session_id,
    CAST(NULL AS VARCHAR) AS campaign,
    r.source_record_keys
FROM receipts r
LEFT JOIN silver.stores s ON s.store_id = r.store_id
