-- Web sessions rebuilt from the events: a visitor's session ends after 30 minutes without an event, the
-- usual web-analytics rule. The collector's session id (session_hint) is not trusted to define sessions, as
-- it is client-side state that resets and leaks across tabs; it is kept only to compare with.
WITH events AS (
    SELECT
        *,
        -- Segment requires one of the two ids; a visit known only by its user id is that user's.
        coalesce(anonymous_id, 'user:' || user_id) AS visitor_id
    FROM silver.web_events
    -- A session belongs to the day it starts, and one may run past midnight, so one day is read on each side
    -- of the window and only sessions starting inside it are written. (The end is shifted on the column's
    -- side: a whole build's end, 9999-12-31, has no day after it.) The contract's one-day lookback makes the
    -- run for a day rewrite the day before as well, completing its sessions with what landed after midnight.
    WHERE event_date >= @start_date - INTERVAL 1 DAY AND event_date - INTERVAL 1 DAY <= @end_date
),
gaps AS (
    SELECT
        *,
        CASE
            WHEN lag(event_ts) OVER visit IS NULL THEN 1
            WHEN event_ts - lag(event_ts) OVER visit > INTERVAL 30 MINUTE THEN 1
            ELSE 0
        END AS starts_session
    FROM events
    WINDOW visit AS (PARTITION BY visitor_id ORDER BY event_ts, event_id)
),
numbered AS (
    SELECT
        *,
        sum(starts_session) OVER (
            PARTITION BY visitor_id ORDER BY event_ts, event_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS session_no
    FROM gaps
),
framed AS (
    SELECT
        *,
        first_value(event_id) OVER session_events AS first_event_id,
        first_value(page_path) OVER session_events AS landing_path,
        first_value(utm_source) OVER session_events AS landing_utm_source,
        first_value(utm_medium) OVER session_events AS landing_utm_medium,
        first_value(utm_campaign) OVER session_events AS landing_utm_campaign,
        first_value(session_hint) OVER session_events AS first_session_hint
    FROM numbered
    WINDOW session_events AS (PARTITION BY visitor_id, session_no ORDER BY event_ts, event_id)
),
sessions AS (
    SELECT
        first_event_id AS session_key,
        min(anonymous_id) AS anonymous_id,
        max(user_id) AS user_id,
        max(customer_token) AS customer_token,
        min(event_ts) AS started_ts,
        max(event_ts) AS ended_ts,
        count(*) AS event_count,
        count(*) FILTER (WHERE event_name = 'page_view') AS page_views,
        min(landing_path) AS landing_path,
        min(landing_utm_source) AS utm_source,
        min(landing_utm_medium) AS utm_medium,
        min(landing_utm_campaign) AS utm_campaign,
        count(*) FILTER (WHERE event_name = 'order_completed') AS orders,
        arg_min(order_id, event_ts) FILTER (WHERE event_name = 'order_completed') AS order_id,
        min(first_session_hint) AS session_hint,
        count(DISTINCT session_hint) AS session_hints
    FROM framed
    GROUP BY visitor_id, session_no, first_event_id
)
SELECT
    session_key,
    anonymous_id,
    user_id,
    customer_token,
    started_ts,
    ended_ts,
    CAST(started_ts AT TIME ZONE 'UTC' AS DATE) AS session_date,
    CAST(date_diff('second', started_ts, ended_ts) AS INTEGER) AS duration_s,
    CAST(event_count AS INTEGER) AS event_count,
    CAST(page_views AS INTEGER) AS page_views,
    landing_path,
    utm_source,
    utm_medium,
    utm_campaign,
    orders > 0 AS converted,
    order_id,
    'shopify:' || order_id AS order_key,
    session_hint,
    CAST(session_hints AS INTEGER) AS session_hints
FROM sessions
WHERE CAST(started_ts AT TIME ZONE 'UTC' AS DATE) BETWEEN @start_date AND @end_date
