-- The order fact: one row per order on any channel, with what an order carries beside its lines (shipping, the
-- dispatch promise, the ship-to) in EUR. The headline order counts, the first order of each customer and the
-- queue of orders to ship read it. Name and street lines stay PII tokens, as silver keeps them.
WITH items AS (
    SELECT order_key, sum(quantity) AS items
    FROM silver.order_lines
    WHERE order_date BETWEEN @start_date AND @end_date
    GROUP BY order_key
)
SELECT
    o.order_key,
    o.channel,
    o.channel_order_id,
    o.store_id,
    o.customer_token,
    o.order_ts,
    o.order_date,
    o.currency,
    CAST(coalesce(i.items, 0) AS BIGINT) AS items,
    o.subtotal_base,
    o.discount_base,
    o.shipping_base,
    o.tax_base,
    o.total_base,
    o.ship_by_ts,
    o.ship_country,
    a.name_token AS ship_to_name_token,
    a.street_token AS ship_to_street_token,
    a.street2_token AS ship_to_street2_token,
    a.city AS ship_to_city,
    a.region AS ship_to_region,
    a.postal_code AS ship_to_postal_code,
    o.updated_ts
FROM silver.orders o
LEFT JOIN silver.order_ship_to a ON a.order_key = o.order_key AND a.order_date BETWEEN @start_date AND @end_date
LEFT JOIN items i ON i.order_key = o.order_key
WHERE o.order_date BETWEEN @start_date AND @end_date
