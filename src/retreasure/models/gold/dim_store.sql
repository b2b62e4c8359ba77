-- The stores as the tills know them, with their sales span: stores are few and change rarely.
WITH activity AS (
    SELECT store_id, count(*) AS orders, min(order_date) AS first_order_date, max(order_date) AS last_order_date
    FROM silver.orders
    WHERE channel = 'pos'
    GROUP BY ALL
)
SELECT
    s.store_id,
    s.name,
    s.city,
    s.country,
    s.region,
    s.currency,
    s.timezone,
    coalesce(a.orders, 0) AS orders,
    a.first_order_date,
    a.last_order_date
FROM silver.stores s
LEFT JOIN activity a USING (store_id)
