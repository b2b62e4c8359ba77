-- Shipments against their promise: one row per parcel with its order's date and dispatch deadline. Days are
-- whole UTC calendar days, the way a customer counts them; late compares the instants.
SELECT
    f.fulfillment_key,
    f.order_key,
    f.channel,
    o.store_id,
    o.customer_token,
    o.ship_country,
    o.order_ts,
    o.order_date,
    o.ship_by_ts,
    CAST(o.ship_by_ts AT TIME ZONE 'UTC' AS DATE) AS ship_by_date,
    f.shipped_ts,
    f.shipped_date,
    CAST(date_diff('day', o.order_date, f.shipped_date) AS INTEGER) AS days_to_ship,
    CAST(date_diff('second', o.order_ts, f.shipped_ts) AS BIGINT) AS seconds_to_ship,
    f.shipped_ts > o.ship_by_ts AS is_late,
    f.delivered_ts,
    CAST(f.delivered_ts AT TIME ZONE 'UTC' AS DATE) AS delivered_date,
    CAST(date_diff('day', f.shipped_date, CAST(f.delivered_ts AT TIME ZONE 'UTC' AS DATE)) AS INTEGER) AS delivery_days,
    f.carrier,
    f.tracking_number,
    f.updated_ts
FROM silver.fulfillments f
-- Left join: a shipment whose order has not landed yet cannot be measured; the row rule holds it back with a reason,
-- and the contract's reach rule brings it back on its ship day once the order lands.
LEFT JOIN silver.orders o USING (order_key)
WHERE f.shipped_date BETWEEN @start_date AND @end_date
