-- Shopify orders as the buyer paid them. Amounts come from presentmentMoney (the buyer's currency): shopMoney
-- is the shop's EUR at Shopify's own rate, and the conversion to the base currency belongs to silver.orders.
WITH parsed AS (
    SELECT
        record_key AS source_record_key,
        json_extract_string(raw, '$.legacyResourceId') AS channel_order_id,
        coalesce(json_extract_string(raw, '$.email'), json_extract_string(raw, '$.customer.email')) AS customer_token,
        TRY_CAST(json_extract_string(raw, '$.createdAt') AS TIMESTAMPTZ) AS order_ts,
        TRY_CAST(json_extract_string(raw, '$.updatedAt') AS TIMESTAMPTZ) AS updated_ts,
        coalesce(
            json_extract_string(raw, '$.totalPriceSet.presentmentMoney.currencyCode'),
            json_extract_string(raw, '$.presentmentCurrencyCode')
        ) AS currency,
        -- Shopify's subtotal is after discounts; the conformed one is before them.
        TRY_CAST(json_extract_string(raw, '$.subtotalPriceSet.presentmentMoney.amount') AS DECIMAL(18, 2))
        + TRY_CAST(json_extract_string(raw, '$.totalDiscountsSet.presentmentMoney.amount') AS DECIMAL(18, 2))
            AS subtotal,
        TRY_CAST(json_extract_string(raw, '$.totalDiscountsSet.presentmentMoney.amount') AS DECIMAL(18, 2))
            AS discount,
        TRY_CAST(json_extract_string(raw, '$.totalShippingPriceSet.presentmentMoney.amount') AS DECIMAL(18, 2))
            AS shipping,
        TRY_CAST(json_extract_string(raw, '$.totalTaxSet.presentmentMoney.amount') AS DECIMAL(18, 2)) AS tax,
        TRY_CAST(json_extract_string(raw, '$.totalPriceSet.presentmentMoney.amount') AS DECIMAL(18, 2)) AS total,
        -- A tax line the sales channel is liable for is tax someone else files; any such line makes it theirs.
        CASE
            WHEN array_length(list_filter(
                TRY_CAST(json_extract(raw, '$.taxLines') AS VARCHAR[]),
                t -> json_extract_string(t, '$.channelLiable') = 'true'
            )) > 0 THEN 'marketplace'
            ELSE 'seller'
        END AS tax_party,
        -- Destination-based tax: the ship-to address is the jurisdiction (billing when nothing ships).
        coalesce(
            json_extract_string(raw, '$.shippingAddress.countryCode'),
            json_extract_string(raw, '$.billingAddress.countryCode'),
            ''
        ) AS tax_country,
        coalesce(
            json_extract_string(raw, '$.shippingAddress.provinceCode'),
            json_extract_string(raw, '$.billingAddress.provinceCode')
        ) AS province,
        json_extract_string(raw, '$.shippingAddress.countryCode') AS ship_country,
        -- The promise lives on the order's fulfillment orders; the earliest one binds (ISO strings in one format
        -- sort as instants). An order sent before fulfillmentOrders was asked for has none: NULL.
        TRY_CAST(
            list_min(json_extract_string(raw, '$.fulfillmentOrders.nodes[*].fulfillBy')) AS TIMESTAMPTZ
        ) AS ship_by_ts,
        json_extract_string(raw, '$.discountCodes[0]') AS discount_code,
        list_filter(
            TRY_CAST(json_extract(raw, '$.customAttributes') AS VARCHAR[]),
            a -> json_extract_string(a, '$.key') = 'session_id'
        )[1] AS session_attribute,
        list_filter(
            TRY_CAST(json_extract(raw, '$.customAttributes') AS VARCHAR[]),
            a -> json_extract_string(a, '$.key') = 'utm_campaign'
        )[1] AS campaign_attribute
    -- The engine starts the window lookback_days (1) early: changes stamped late on the day before are read.
    FROM @newest(bronze.shopify_orders)
)
SELECT
    'shopify:' || channel_order_id AS order_key,
    'shopify' AS channel,
    channel_order_id,
    CAST(NULL AS VARCHAR) AS store_id,
    customer_token,
    order_ts,
    CAST(order_ts AT TIME ZONE 'UTC' AS DATE) AS order_date,
    updated_ts,
    currency,
    subtotal,
    discount,
    shipping,
    tax,
    total,
    tax_party,
    tax_country,
    -- Only US states tax separately; Shopify also fills provinceCode for other countries' regions.
    CASE WHEN tax_country = 'US' THEN coalesce(province, '') ELSE '' END AS tax_region,
    ship_country,
    ship_by_ts,
    discount_code,
    json_extract_string(session_attribute, '$.value') AS session_id,
    json_extract_string(campaign_attribute, '$.value') AS campaign,
    source_record_key
FROM parsed
