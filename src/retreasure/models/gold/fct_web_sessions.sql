-- Web sessions with what they earned: the converting order's value in EUR from silver.orders, so that
-- conversion value and sales agree to the cent.
SELECT
    s.session_key,
    s.session_date,
    s.started_ts,
    s.ended_ts,
    s.duration_s,
    s.anonymous_id,
    s.customer_token,
    s.event_count,
    s.page_views,
    s.landing_path,
    s.utm_source,
    s.utm_medium,
    s.utm_campaign,
    s.converted,
    s.order_key,
    o.order_key IS NOT NULL AS order_found,
    o.currency AS order_currency,
    o.subtotal_base - o.discount_base AS order_net_sales_base,
    o.total_base AS order_total_base
FROM silver.sessions s
-- An order the shop has not delivered yet leaves the value empty (order_found false) until it lands.
LEFT JOIN silver.orders o ON o.order_key = s.order_key
WHERE s.session_date BETWEEN @start_date AND @end_date
