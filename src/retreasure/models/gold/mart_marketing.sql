-- Web marketing by day and campaign: the funnel of the sessions a campaign landed, the sales they made and
-- what the campaign cost. A session belongs to its landing campaign (first touch) and to the day it started;
-- its order's revenue is credited there, even when the order completes after midnight. Sessions that landed
-- without a campaign are grouped as '(direct)'.
-- An incremental build runs it for the changed days (lookback 1: a change to an order or an event one day after a
-- session's day is that session's); a session's events and order come at or after its start, hence the reads
-- from @start_date on.
WITH visits AS (
    SELECT
        session_key,
        coalesce(anonymous_id, 'user:' || user_id) AS visitor_id,
        started_ts,
        ended_ts,
        session_date AS day,
        coalesce(utm_campaign, '(direct)') AS campaign,
        event_count,
        page_views,
        duration_s,
        converted,
        order_key
    FROM silver.sessions
    WHERE session_date BETWEEN @start_date AND @end_date
),
-- The events are tied back to their session the way silver.sessions cut them: same visitor, inside the
-- session's first and last event (a visitor's sessions never overlap).
funnel AS (
    SELECT
        s.session_key,
        count(*) FILTER (WHERE e.event_name = 'product_viewed') AS product_views,
        count(*) FILTER (WHERE e.event_name = 'product_added') AS carts,
        count(*) FILTER (WHERE e.event_name = 'checkout_started') AS checkouts
    FROM visits s
    JOIN silver.web_events e
        ON coalesce(e.anonymous_id, 'user:' || e.user_id) = s.visitor_id
        AND e.event_ts BETWEEN s.started_ts AND s.ended_ts
    WHERE e.event_date >= @start_date
    GROUP BY s.session_key
),
order_revenue AS (
    SELECT order_key, sum(net_sales_base) AS revenue
    FROM gold.fct_order_lines
    -- A day early: the shop's clock and the collector's may disagree by seconds across midnight.
    WHERE channel = 'shopify' AND order_date >= @start_date - INTERVAL 1 DAY
    GROUP BY order_key
),
web AS (
    SELECT
        s.day,
        s.campaign,
        count(*) AS sessions,
        sum(s.event_count) AS events,
        sum(s.page_views) AS page_views,
        sum(s.duration_s) AS duration_s,
        sum(coalesce(f.product_views, 0)) AS product_views,
        sum(coalesce(f.carts, 0)) AS carts,
        sum(coalesce(f.checkouts, 0)) AS checkouts,
        count(*) FILTER (WHERE s.converted) AS orders,
        sum(coalesce(r.revenue, 0)) AS revenue
    FROM visits s
    LEFT JOIN funnel f ON f.session_key = s.session_key
    LEFT JOIN order_revenue r ON r.order_key = s.order_key
    GROUP BY s.day, s.campaign
),
-- Spend is in the ad account's currency: EUR at the rate of the spend day, row by row, as for sales.
spend AS (
    SELECT
        a.spend_date AS day,
        a.campaign_name AS campaign,
        -- A day without a rate makes the sum empty rather than short, so the not_null check catches it.
        CASE
            WHEN count(*) FILTER (WHERE fx.rate_per_eur IS NULL) = 0 THEN sum(@to_base(a.spend, fx.rate_per_eur))
        END AS ad_spend,
        sum(a.clicks) AS ad_clicks,
        sum(a.impressions) AS ad_impressions
    FROM silver.ad_spend a
    LEFT JOIN silver.fx_rates fx ON fx.rate_date = a.spend_date AND fx.currency = a.currency
    WHERE a.spend_date BETWEEN @start_date AND @end_date
    GROUP BY a.spend_date, a.campaign_name
),
joined AS (
    SELECT
        coalesce(w.day, p.day) AS day,
        coalesce(w.campaign, p.campaign) AS campaign,
        coalesce(w.sessions, 0) AS sessions,
        coalesce(w.events, 0) AS events,
        coalesce(w.page_views, 0) AS page_views,
        coalesce(w.duration_s, 0) AS duration_s,
        coalesce(w.product_views, 0) AS product_views,
        coalesce(w.carts, 0) AS carts,
        coalesce(w.checkouts, 0) AS checkouts,
        coalesce(w.orders, 0) AS orders,
        coalesce(w.revenue, 0) AS revenue,
        CASE WHEN p.day IS NULL THEN 0 ELSE p.ad_spend END AS ad_spend,
        coalesce(p.ad_clicks, 0) AS ad_clicks,
        coalesce(p.ad_impressions, 0) AS ad_impressions
    FROM web w
    FULL OUTER JOIN spend p ON p.day = w.day AND p.campaign = w.campaign
)
SELECT
    day,
    campaign,
    CAST(sessions AS INTEGER) AS sessions,
    CAST(page_views AS INTEGER) AS page_views,
    CAST(product_views AS INTEGER) AS product_views,
    CAST(carts AS INTEGER) AS carts,
    CAST(checkouts AS INTEGER) AS checkouts,
    CAST(orders AS INTEGER) AS orders,
    CAST(round(orders / nullif(sessions, 0), 4) AS DECIMAL(7, 4)) AS conversion_rate,
    revenue,
    ad_spend,
    CAST(ad_clicks AS BIGINT) AS ad_clicks,
    CAST(ad_impressions AS BIGINT) AS ad_impressions,
    CAST(round((revenue - ad_spend) / nullif(ad_spend, 0), 4) AS DECIMAL(12, 4)) AS roi,
    CAST(round(revenue / nullif(ad_spend, 0), 4) AS DECIMAL(12, 4)) AS roas,
    CAST(events AS INTEGER) AS events,
    CAST(round(events / nullif(sessions, 0), 2) AS DECIMAL(9, 2)) AS events_per_session,
    CAST(round(duration_s / nullif(sessions, 0), 1) AS DECIMAL(12, 1)) AS avg_session_seconds
FROM joined
