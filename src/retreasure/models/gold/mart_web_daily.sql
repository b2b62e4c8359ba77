-- The web shop's day as its events tell it, for real-time serving: the stream's micro-builds rewrite only the
-- days new events fall in, so "today so far" is one small partition. A day is the UTC day of each event: orders
-- on the day of their order_completed event, sessions on the day they started (silver.sessions: an open
-- session may still grow), payments on the day the gateway recorded them.
WITH events AS (
    SELECT
        event_date AS day,
        count(*) AS events,
        count(*) FILTER (WHERE event_name = 'page_view') AS page_views,
        count(*) FILTER (WHERE event_name = 'product_viewed') AS product_views,
        count(*) FILTER (WHERE event_name = 'product_added') AS carts,
        count(*) FILTER (WHERE event_name = 'checkout_started') AS checkouts,
        max(event_ts) AS newest_web_event_ts
    FROM silver.web_events
    WHERE event_date BETWEEN @start_date AND @end_date
    GROUP BY event_date
),
-- One row per order of the day: a confirmation page sent twice is still one order.
day_orders AS (
    SELECT
        event_date AS day,
        order_key,
        arg_min(order_revenue, event_ts) AS order_revenue,
        arg_min(order_currency, event_ts) AS order_currency
    FROM silver.web_events
    WHERE event_name = 'order_completed' AND event_date BETWEEN @start_date AND @end_date
    GROUP BY event_date, order_key
),
sales AS (
    SELECT
        o.day,
        count(*) AS orders,
        -- An order without a rate or a revenue makes the sum empty rather than short (the check says so).
        CASE
            WHEN count(*) FILTER (WHERE fx.rate_per_eur IS NULL OR o.order_revenue IS NULL) = 0
                THEN sum(@to_base(o.order_revenue, fx.rate_per_eur))
        END AS revenue
    FROM day_orders o
    LEFT JOIN silver.fx_rates fx ON fx.rate_date = o.day AND fx.currency = o.order_currency
    GROUP BY o.day
),
visits AS (
    SELECT
        session_date AS day,
        count(*) AS sessions,
        count(*) FILTER (WHERE converted) AS converted_sessions
    FROM silver.sessions
    WHERE session_date BETWEEN @start_date AND @end_date
    GROUP BY session_date
),
payments AS (
    SELECT occurred_date AS day, count(*) AS transactions, max(occurred_ts) AS newest_transaction_ts
    FROM silver.online_transactions
    WHERE occurred_date BETWEEN @start_date AND @end_date
    GROUP BY occurred_date
),
days AS (
    SELECT day FROM events UNION SELECT day FROM visits UNION SELECT day FROM payments
)
SELECT
    d.day,
    CAST(coalesce(v.sessions, 0) AS INTEGER) AS sessions,
    CAST(coalesce(v.converted_sessions, 0) AS INTEGER) AS converted_sessions,
    CAST(round(v.converted_sessions / nullif(v.sessions, 0), 4) AS DECIMAL(7, 4)) AS conversion_rate,
    CAST(coalesce(s.orders, 0) AS INTEGER) AS orders,
    CASE WHEN s.day IS NULL THEN CAST(0 AS DECIMAL(18, 2)) ELSE s.revenue END AS revenue,
    CAST(coalesce(e.events, 0) AS INTEGER) AS events,
    CAST(coalesce(e.page_views, 0) AS INTEGER) AS page_views,
    CAST(coalesce(e.product_views, 0) AS INTEGER) AS product_views,
    CAST(coalesce(e.carts, 0) AS INTEGER) AS carts,
    CAST(coalesce(e.checkouts, 0) AS INTEGER) AS checkouts,
    CAST(coalesce(p.transactions, 0) AS INTEGER) AS transactions,
    e.newest_web_event_ts,
    p.newest_transaction_ts,
    greatest(e.newest_web_event_ts, p.newest_transaction_ts) AS newest_event_ts
FROM days d
LEFT JOIN events e USING (day)
LEFT JOIN sales s USING (day)
LEFT JOIN visits v USING (day)
LEFT JOIN payments p USING (day)
