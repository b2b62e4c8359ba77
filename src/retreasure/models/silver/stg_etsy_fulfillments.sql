-- Parcels shipped for Etsy receipts: the shipments listed on the newest version of each receipt. Etsy says
-- when the buyer was notified of the shipment, not when it was delivered.
WITH shipments AS (
    SELECT
        v.record_key AS source_record_key,
        json_extract_string(v.raw, '$.receipt_id') AS channel_order_id,
        TRY_CAST(json_extract_string(v.raw, '$.updated_timestamp') AS BIGINT) AS updated_epoch,
        json_extract_string(u.s, '$.receipt_shipping_id') AS shipment_id,
        TRY_CAST(json_extract_string(u.s, '$.shipment_notification_timestamp') AS BIGINT) AS shipped_epoch,
        -- Not in Etsy's schema today; read should a delivery time ever be sent.
        TRY_CAST(json_extract_string(u.s, '$.delivered_timestamp') AS BIGINT) AS delivered_epoch,
        json_extract_string(u.s, '$.carrier_name') AS carrier,
        json_extract_string(u.s, '$.tracking_code') AS tracking_number
    -- The engine starts the window lookback_days (1) early: a change landed the day after it happened is read.
    FROM @newest(bronze.etsy_receipts) v
    CROSS JOIN unnest(TRY_CAST(json_extract(v.raw, '$.shipments') AS JSON[])) AS u (s)
)
SELECT
    'etsy:' || shipment_id AS fulfillment_key,
    'etsy:' || channel_order_id AS order_key,
    'etsy' AS channel,
    to_timestamp(shipped_epoch) AS shipped_ts,
    CAST(to_timestamp(shipped_epoch) AT TIME ZONE 'UTC' AS DATE) AS shipped_date,
    to_timestamp(delivered_epoch) AS delivered_ts,
    carrier,
    tracking_number,
    to_timestamp(updated_epoch) AS updated_ts,
    source_record_key
FROM shipments
