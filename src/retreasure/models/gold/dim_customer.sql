-- A person across channels: the e-mail token is the identity (each channel's own customer ids differ, the
-- e-mail does not), so marketplace buyers, store customers who gave an e-mail and shop accounts merge on it.
WITH bought AS (
    SELECT
        customer_token,
        min(order_date) AS first_order_date,
        max(order_date) AS last_order_date,
        count(*) AS orders,
        list_sort(list(DISTINCT channel)) AS channels,
        sum(total_base) AS total_spent_base,
        -- The address an online order shipped to, latest first: where the person lives as far as we know.
        arg_max(ship_country, order_ts) FILTER (WHERE ship_country IS NOT NULL) AS last_ship_country
    FROM silver.orders
    WHERE customer_token IS NOT NULL
    GROUP BY ALL
),
shop AS (
    SELECT
        customer_token,
        arg_max(channel_customer_id, updated_ts) AS shopify_customer_id,
        arg_max(country, updated_ts) AS country,
        arg_max(accepts_marketing, updated_ts) AS accepts_marketing,
        min(created_ts) AS created_ts
    FROM silver.stg_shopify_customers
    WHERE customer_token IS NOT NULL
    GROUP BY ALL
),
tokens AS (
    SELECT customer_token FROM bought
    UNION SELECT customer_token FROM shop
)
SELECT
    t.customer_token,
    s.shopify_customer_id,
    b.first_order_date,
    b.last_order_date,
    coalesce(b.orders, 0) AS orders,
    coalesce(b.channels, []) AS channels,
    coalesce(array_length(b.channels), 0) AS channel_count,
    coalesce(b.total_spent_base, 0) AS total_spent_base,
    coalesce(s.country, b.last_ship_country) AS country,
    s.accepts_marketing,
    CAST(s.created_ts AS DATE) AS shopify_created_date
FROM tokens t
LEFT JOIN bought b USING (customer_token)
LEFT JOIN shop s USING (customer_token)
