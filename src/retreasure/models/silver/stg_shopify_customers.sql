-- People who bought on Shopify, newest version of each customer. A window's run reads the versions that landed in
-- it and merges them into the table by customer (write mode merge). PII stays as the tokens bronze holds.
SELECT
    'shopify:' || json_extract_string(raw, '$.legacyResourceId') AS customer_key,
    'shopify' AS channel,
    json_extract_string(raw, '$.legacyResourceId') AS channel_customer_id,
    json_extract_string(raw, '$.email') AS customer_token,
    json_extract_string(raw, '$.defaultAddress.countryCode') AS country,
    json_extract_string(raw, '$.defaultAddress.provinceCode') AS region,
    json_extract_string(raw, '$.defaultAddress.city') AS city,
    -- Unknown stays NULL: an absent consent block is not a refusal.
    CASE json_extract_string(raw, '$.emailMarketingConsent.marketingState')
        WHEN 'SUBSCRIBED' THEN TRUE
        WHEN 'NOT_SUBSCRIBED' THEN FALSE
        WHEN 'UNSUBSCRIBED' THEN FALSE
        WHEN 'REDACTED' THEN FALSE
    END AS accepts_marketing,
    TRY_CAST(json_extract_string(raw, '$.numberOfOrders') AS INTEGER) AS orders_count,
    TRY_CAST(json_extract_string(raw, '$.createdAt') AS TIMESTAMPTZ) AS created_ts,
    TRY_CAST(json_extract_string(raw, '$.updatedAt') AS TIMESTAMPTZ) AS updated_ts,
    record_key AS source_record_key
FROM @newest(bronze.shopify_customers)
