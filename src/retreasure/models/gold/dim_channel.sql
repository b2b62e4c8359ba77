-- The channels with their kind and tax arrangement, plus the span of their orders so a dashboard can tell an
-- idle channel from one with no data.
WITH activity AS (
    SELECT channel, count(*) AS orders, min(order_date) AS first_order_date, max(order_date) AS last_order_date
    FROM silver.orders
    GROUP BY ALL
)
SELECT
    c.channel,
    c.name,
    c.kind,
    c.kind = 'marketplace' AS is_marketplace,
    c.default_tax_party,
    c.marketplace_remits_in,
    coalesce(a.orders, 0) AS orders,
    a.first_order_date,
    a.last_order_date
FROM silver.channels c
LEFT JOIN activity a USING (channel)
