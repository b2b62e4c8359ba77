-- Shopify fulfillments (shipments) from the newest version of each order.
WITH fulfillments AS (
    SELECT
        record_key AS source_record_key,
        json_extract_string(raw, '$.legacyResourceId') AS channel_order_id,
        unnest(TRY_CAST(json_extract(raw, '$.fulfillments') AS VARCHAR[])) AS fulfillment
    -- The engine starts the window lookback_days (1) early: changes stamped late on the day before are read.
    FROM @newest(bronze.shopify_orders)
),
parsed AS (
    SELECT
        source_record_key,
        channel_order_id,
        regexp_extract(json_extract_string(fulfillment, '$.id'), '([0-9]+)$', 1) AS fulfillment_id,
        -- Created is when the parcel was handed over; inTransitAt is the carrier's first scan, which may lag.
        TRY_CAST(json_extract_string(fulfillment, '$.createdAt') AS TIMESTAMPTZ) AS shipped_ts,
        TRY_CAST(json_extract_string(fulfillment, '$.deliveredAt') AS TIMESTAMPTZ) AS delivered_ts,
        -- A shipment split over several parcels lists several; the first is the one the buyer is sent.
        json_extract_string(fulfillment, '$.trackingInfo[0].company') AS carrier,
        json_extract_string(fulfillment, '$.trackingInfo[0].number') AS tracking_number,
        TRY_CAST(coalesce(
            json_extract_string(fulfillment, '$.updatedAt'), json_extract_string(fulfillment, '$.createdAt')
        ) AS TIMESTAMPTZ) AS updated_ts
    FROM fulfillments
)
SELECT
    'shopify:' || fulfillment_id AS fulfillment_key,
    'shopify:' || channel_order_id AS order_key,
    'shopify' AS channel,
    shipped_ts,
    CAST(shipped_ts AT TIME ZONE 'UTC' AS DATE) AS shipped_date,
    delivered_ts,
    carrier,
    tracking_number,
    updated_ts,
    source_record_key
FROM parsed
