-- Every online channel's shipments in one shape.
WITH staged AS (
    SELECT * FROM silver.stg_shopify_fulfillments
    UNION ALL BY NAME SELECT * FROM silver.stg_ebay_fulfillments
    UNION ALL BY NAME SELECT * FROM silver.stg_etsy_fulfillments
)
SELECT
    fulfillment_key, order_key, channel, shipped_ts, shipped_date, delivered_ts, carrier, tracking_number, updated_ts
FROM staged
WHERE shipped_date BETWEEN @start_date AND @end_date
