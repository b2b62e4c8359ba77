-- Parcels shipped for eBay orders (getShippingFulfillments), newest version per fulfillment. The payload names
-- no order, so the connector lands it under "<orderId>/<fulfillmentId>"; eBay reports no delivery.
WITH parsed AS (
    SELECT
        record_key AS source_record_key,
        record_key,
        split_part(record_key, '/', 1) AS channel_order_id,
        TRY_CAST(json_extract_string(raw, '$.shippedDate') AS TIMESTAMPTZ) AS shipped_ts,
        json_extract_string(raw, '$.shippingCarrierCode') AS carrier,
        json_extract_string(raw, '$.shipmentTrackingNumber') AS tracking_number,
        record_updated_at AS updated_ts
    -- The engine starts the window lookback_days (1) early: a change landed the day after it happened is read.
    FROM @newest(bronze.ebay_shipping_fulfillments, record_updated_at)
)
SELECT
    'ebay:' || record_key AS fulfillment_key,
    'ebay:' || channel_order_id AS order_key,
    'ebay' AS channel,
    shipped_ts,
    CAST(shipped_ts AT TIME ZONE 'UTC' AS DATE) AS shipped_date,
    CAST(NULL AS TIMESTAMPTZ) AS delivered_ts,
    carrier,
    tracking_number,
    updated_ts,
    source_record_key
FROM parsed
