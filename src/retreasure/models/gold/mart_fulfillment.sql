-- Shipping performance by channel and order day: how many online orders went out, how fast, and whether the
-- dispatch time promised to the buyer was kept. Store sales are handed over at the till and excluded.
-- Each order is judged by its first parcel: that is when the buyer's order started to move.
-- An order not shipped is judged at the data's clock, the newest order or parcel in silver (the clock the API's
-- "as of" defaults to): past its promise it is late (overdue), before it still pending, neither late nor on time.
-- The clock moves only when silver.orders or silver.fulfillments does, and either change rebuilds this mart.
WITH clock AS (
    SELECT greatest(
        (SELECT max(order_ts) FROM silver.orders),
        (SELECT max(shipped_ts) FROM silver.fulfillments)
    ) AS judged_at
),
online_orders AS (
    SELECT order_key, channel, order_date, order_ts, ship_by_ts
    FROM silver.orders
    WHERE channel <> 'pos'
),
first_parcels AS (
    SELECT
        order_key,
        count(*) AS parcels,
        min(shipped_ts) AS shipped_ts,
        arg_min(delivered_ts, shipped_ts) AS delivered_ts
    FROM silver.fulfillments
    GROUP BY order_key
),
judged AS (
    SELECT
        o.channel,
        o.order_date,
        o.ship_by_ts,
        p.shipped_ts IS NOT NULL AS shipped,
        CASE
            WHEN o.ship_by_ts IS NULL THEN NULL
            WHEN p.shipped_ts IS NOT NULL THEN CASE WHEN p.shipped_ts > o.ship_by_ts THEN 'shipped_late' ELSE 'on_time' END
            WHEN o.ship_by_ts < c.judged_at THEN 'overdue'
            ELSE 'pending'
        END AS promise,
        date_diff('second', o.order_ts, p.shipped_ts) AS seconds_to_ship,
        date_diff('second', o.order_ts, p.shipped_ts) / 3600.0 AS hours_to_ship,
        date_diff('second', p.shipped_ts, p.delivered_ts) / 86400.0 AS delivery_days
    FROM online_orders o
    CROSS JOIN clock c
    LEFT JOIN first_parcels p ON p.order_key = o.order_key
),
daily AS (
    SELECT
        channel,
        order_date,
        count(*) AS orders_to_ship,
        count(*) FILTER (WHERE shipped) AS orders_shipped,
        count(*) FILTER (WHERE ship_by_ts IS NOT NULL) AS orders_with_ship_by,
        count(*) FILTER (WHERE promise = 'on_time') AS shipped_on_time,
        count(*) FILTER (WHERE promise = 'shipped_late') AS shipped_late,
        count(*) FILTER (WHERE promise = 'overdue') AS overdue_unshipped,
        count(*) FILTER (WHERE promise = 'pending') AS orders_pending,
        median(hours_to_ship) AS median_hours_to_ship,
        -- The mean from whole seconds summed exactly: a parallel sum of floats differs in its last digit
        -- from one build to the next, and rounding can carry that into the second decimal.
        sum(seconds_to_ship) AS seconds_to_ship,
        count(seconds_to_ship) AS orders_timed,
        count(delivery_days) AS orders_delivered,
        median(delivery_days) AS median_delivery_days
    FROM judged
    GROUP BY channel, order_date
)
SELECT
    d.channel,
    d.order_date,
    CAST(d.orders_to_ship AS INTEGER) AS orders_to_ship,
    CAST(d.orders_shipped AS INTEGER) AS orders_shipped,
    CAST(round(d.orders_shipped / d.orders_to_ship, 4) AS DECIMAL(7, 4)) AS fulfillment_rate,
    CAST(round(d.median_hours_to_ship, 2) AS DECIMAL(12, 2)) AS median_hours_to_ship,
    CAST(@divide(d.seconds_to_ship, d.orders_timed * 3600, 2) AS DECIMAL(12, 2)) AS avg_hours_to_ship,
    CAST(d.orders_with_ship_by AS INTEGER) AS orders_with_ship_by,
    CAST(d.shipped_on_time AS INTEGER) AS shipped_on_time,
    CAST(d.shipped_late AS INTEGER) AS shipped_late,
    CAST(d.overdue_unshipped AS INTEGER) AS overdue_unshipped,
    CAST(d.shipped_late + d.overdue_unshipped AS INTEGER) AS late_orders,
    CAST(d.orders_pending AS INTEGER) AS orders_pending,
    CAST(round(d.shipped_on_time / nullif(d.shipped_on_time + d.shipped_late + d.overdue_unshipped, 0), 4)
        AS DECIMAL(7, 4)) AS on_time_rate,
    CAST(d.orders_delivered AS INTEGER) AS orders_delivered,
    CAST(round(d.median_delivery_days, 2) AS DECIMAL(9, 2)) AS median_delivery_days,
    c.judged_at
FROM daily d
CROSS JOIN clock c
