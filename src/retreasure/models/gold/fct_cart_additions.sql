-- Every product put in the web shop's cart: who (once the visitor is known), what and when. The cart
-- abandoners' audience reads it against the orders placed since.
SELECT
    event_id,
    event_ts,
    event_date,
    anonymous_id,
    customer_token,
    product_sku,
    product_id
FROM silver.web_events
WHERE event_name = 'product_added' AND event_date BETWEEN @start_date AND @end_date
