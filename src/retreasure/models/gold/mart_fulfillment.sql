-- Shipping performance by channel and order day: how many online orders went out, how fast, and how many
-- left after the dispatch time promised to the buyer. Store sales are handed over at the till and excluded.
-- Each order is judged by its first parcel: that is when the buyer's order started to move.
WITH online_orders AS (
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
        p.shipped_ts > o.ship_by_ts AS late,
        date_diff('second', o.order_ts, p.shipped_ts) / 3600.0 AS hours_to_ship,
        date_diff('second', p.shipped_ts, p.delivered_ts) / 86400.0 AS delivery_days
    FROM online_orders o
    LEFT JOIN first_parcels p ON p.order_key = o.order_key
),
daily AS (
    SELECT
        channel,
        order_date,
        count(*) AS orders_to_ship,
        count(*) FILTER (WHERE shipped) AS orders_shipped,
        count(*) FILTER (WHERE ship_by_ts IS NOT NULL) AS orders_with_ship_by,
        count(*) FILTER (WHERE late) AS late_shipments,
        median(hours_to_ship) AS median_hours_to_ship,
        avg(hours_to_ship) AS avg_hours_to_ship,
        count(delivery_days) AS orders_delivered,
        median(delivery_days) AS median_delivery_days
    FROM judged
    GROUP BY channel, order_date
)
SELECT
    channel,
    order_date,
    CAST(orders_to_ship AS INTEGER) AS orders_to_ship,
    CAST(orders_shipped AS INTEGER) AS orders_shipped,
    CAST(round(orders_shipped / orders_to_ship, 4) AS DECIMAL(7, 4)) AS fulfillment_rate,
    CAST(round(median_hours_to_ship, 2) AS DECIMAL(12, 2)) AS median_hours_to_ship,
    CAST(round(avg_hours_to_ship, 2) AS DECIMAL(12, 2)) AS avg_hours_to_ship,
    CAST(orders_with_ship_by AS INTEGER) AS orders_with_ship_by,
    CAST(late_shipments AS INTEGER) AS late_shipments,
    CAST(orders_delivered AS INTEGER) AS orders_delivered,
    CAST(round(median_delivery_days, 2) AS DECIMAL(9, 2)) AS median_delivery_days
FROM daily
