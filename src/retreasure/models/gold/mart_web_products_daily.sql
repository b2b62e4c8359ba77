-- The products web visitors looked at, by UTC day: real-time serving's top products of the day, ranked by views
-- (the clickstream names the product of every view and add to cart, so this is known within seconds).
SELECT
    event_date AS day,
    product_sku,
    arg_max(product_id, event_ts) AS product_id,
    CAST(count(*) FILTER (WHERE event_name = 'product_viewed') AS INTEGER) AS product_views,
    CAST(count(*) FILTER (WHERE event_name = 'product_added') AS INTEGER) AS carts,
    CAST(
        count(DISTINCT coalesce(anonymous_id, 'user:' || user_id)) FILTER (WHERE event_name = 'product_viewed')
        AS INTEGER
    ) AS viewers,
    max(event_ts) AS newest_event_ts
FROM silver.web_events
WHERE event_name IN ('product_viewed', 'product_added') AND event_date BETWEEN @start_date AND @end_date
GROUP BY event_date, product_sku
