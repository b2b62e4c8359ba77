-- Where each online order goes: the ship-to address of the newest version of every Shopify, eBay and Etsy order.
-- Name and street lines stay PII tokens (the bronze masks them); only operations sees them in clear, through the
-- vault, at the moment a parcel is packed. City, postal code and country are not personal on their own.
WITH addresses AS (
    SELECT
        record_key AS source_record_key,
        'shopify:' || json_extract_string(raw, '$.legacyResourceId') AS order_key,
        'shopify' AS channel,
        TRY_CAST(json_extract_string(raw, '$.createdAt') AS TIMESTAMPTZ) AS order_ts,
        TRY_CAST(json_extract_string(raw, '$.updatedAt') AS TIMESTAMPTZ) AS updated_ts,
        coalesce(
            json_extract_string(raw, '$.shippingAddress.name'), json_extract_string(raw, '$.shippingAddress.lastName')
        ) AS name_token,
        json_extract_string(raw, '$.shippingAddress.address1') AS street_token,
        json_extract_string(raw, '$.shippingAddress.address2') AS street2_token,
        json_extract_string(raw, '$.shippingAddress.city') AS city,
        json_extract_string(raw, '$.shippingAddress.provinceCode') AS region,
        json_extract_string(raw, '$.shippingAddress.zip') AS postal_code,
        json_extract_string(raw, '$.shippingAddress.countryCode') AS country
    -- The engine starts the window lookback_days (1) early: a change landed the day after it happened is read.
    FROM @newest(bronze.shopify_orders)
    UNION ALL
    SELECT
        record_key,
        'ebay:' || json_extract_string(raw, '$.orderId'),
        'ebay',
        TRY_CAST(json_extract_string(raw, '$.creationDate') AS TIMESTAMPTZ),
        TRY_CAST(json_extract_string(raw, '$.lastModifiedDate') AS TIMESTAMPTZ),
        json_extract_string(raw, '$.fulfillmentStartInstructions[0].shippingStep.shipTo.fullName'),
        json_extract_string(raw, '$.fulfillmentStartInstructions[0].shippingStep.shipTo.contactAddress.addressLine1'),
        json_extract_string(raw, '$.fulfillmentStartInstructions[0].shippingStep.shipTo.contactAddress.addressLine2'),
        json_extract_string(raw, '$.fulfillmentStartInstructions[0].shippingStep.shipTo.contactAddress.city'),
        json_extract_string(
            raw, '$.fulfillmentStartInstructions[0].shippingStep.shipTo.contactAddress.stateOrProvince'
        ),
        json_extract_string(raw, '$.fulfillmentStartInstructions[0].shippingStep.shipTo.contactAddress.postalCode'),
        json_extract_string(raw, '$.fulfillmentStartInstructions[0].shippingStep.shipTo.contactAddress.countryCode')
    FROM @newest(bronze.ebay_orders)
    UNION ALL
    SELECT
        record_key,
        'etsy:' || json_extract_string(raw, '$.receipt_id'),
        'etsy',
        to_timestamp(TRY_CAST(json_extract_string(raw, '$.create_timestamp') AS BIGINT)),
        to_timestamp(TRY_CAST(json_extract_string(raw, '$.updated_timestamp') AS BIGINT)),
        json_extract_string(raw, '$.name'),
        json_extract_string(raw, '$.first_line'),
        json_extract_string(raw, '$.second_line'),
        json_extract_string(raw, '$.city'),
        nullif(json_extract_string(raw, '$.state'), ''),
        json_extract_string(raw, '$.zip'),
        json_extract_string(raw, '$.country_iso')
    FROM @newest(bronze.etsy_receipts)
)
SELECT
    order_key,
    channel,
    order_ts,
    CAST(order_ts AT TIME ZONE 'UTC' AS DATE) AS order_date,
    updated_ts,
    name_token,
    street_token,
    street2_token,
    city,
    region,
    postal_code,
    country,
    source_record_key
FROM addresses
