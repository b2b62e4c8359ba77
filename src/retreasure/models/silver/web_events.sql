-- The web shop's clickstream (Segment page and track messages), one row per event. Segment's messageId is
-- the event's identity, so a message delivered twice is one event. The shop is a website: identify, group
-- and alias calls describe people, not behaviour, and are left out by name; any other message (no type, an unknown
-- one, an app's screen call) comes in and, having no event name, goes to quarantine with the reason.
WITH parsed AS (
    SELECT
        record_key AS source_record_key,
        json_extract_string(raw, '$.messageId') AS event_id,
        json_extract_string(raw, '$.type') AS message_type,
        json_extract_string(raw, '$.event') AS track_event,
        -- Segment's timestamp is the collector's skew-corrected event time (originalTimestamp is the device's).
        TRY_CAST(json_extract_string(raw, '$.timestamp') AS TIMESTAMPTZ) AS event_ts,
        json_extract_string(raw, '$.anonymousId') AS anonymous_id,
        json_extract_string(raw, '$.userId') AS user_id,
        json_extract_string(raw, '$.context.traits.email') AS customer_token,
        json_extract_string(raw, '$.properties.session_id') AS session_hint,
        coalesce(json_extract_string(raw, '$.context.page.url'), json_extract_string(raw, '$.properties.url'))
            AS page_url,
        coalesce(json_extract_string(raw, '$.context.page.path'), json_extract_string(raw, '$.properties.path'))
            AS page_path,
        NULLIF(coalesce(
            json_extract_string(raw, '$.context.page.referrer'), json_extract_string(raw, '$.properties.referrer')
        ), '') AS page_referrer,
        json_extract_string(raw, '$.context.campaign.source') AS campaign_source,
        json_extract_string(raw, '$.context.campaign.medium') AS campaign_medium,
        json_extract_string(raw, '$.context.campaign.name') AS campaign_name,
        json_extract_string(raw, '$.properties.sku') AS product_sku,
        json_extract_string(raw, '$.properties.product_id') AS product_id,
        json_extract_string(raw, '$.properties.order_id') AS order_id,
        TRY_CAST(json_extract_string(raw, '$.properties.total') AS DECIMAL(18, 2)) AS order_total,
        -- Segment's revenue: the order's subtotal less discounts, before tax and shipping.
        TRY_CAST(json_extract_string(raw, '$.properties.revenue') AS DECIMAL(18, 2)) AS order_revenue,
        json_extract_string(raw, '$.properties.currency') AS currency
    FROM @newest(
        bronze.web_clickstream
        WHERE coalesce(json_extract_string(raw, '$.type'), '') NOT IN ('identify', 'group', 'alias')
    )
)
SELECT
    event_id,
    CASE
        WHEN message_type = 'page' THEN 'page_view'
        -- Segment's spec names events in Title Case ("Product Viewed"); snake_case is the canonical form.
        WHEN message_type = 'track' THEN lower(regexp_replace(trim(track_event), '[^A-Za-z0-9]+', '_', 'g'))
        -- Any other message (no type, an unknown one) has no event name: not_null sends it to quarantine.
    END AS event_name,
    event_ts,
    CAST(event_ts AT TIME ZONE 'UTC' AS DATE) AS event_date,
    anonymous_id,
    user_id,
    customer_token,
    session_hint,
    page_url,
    page_path,
    page_referrer,
    -- context.campaign is Segment's parse of the landing URL; the URL itself is the fallback for the first hit.
    coalesce(campaign_source, NULLIF(regexp_extract(page_url, '[?&]utm_source=([^&#]*)', 1), '')) AS utm_source,
    coalesce(campaign_medium, NULLIF(regexp_extract(page_url, '[?&]utm_medium=([^&#]*)', 1), '')) AS utm_medium,
    coalesce(campaign_name, NULLIF(regexp_extract(page_url, '[?&]utm_campaign=([^&#]*)', 1), '')) AS utm_campaign,
    product_sku,
    product_id,
    order_id,
    -- Orders completed on the web shop are Shopify orders.
    'shopify:' || order_id AS order_key,
    order_total,
    CASE WHEN order_total IS NOT NULL THEN order_revenue END AS order_revenue,
    CASE WHEN order_total IS NOT NULL THEN currency END AS order_currency,
    source_record_key
FROM parsed
