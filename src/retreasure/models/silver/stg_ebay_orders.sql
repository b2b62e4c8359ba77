-- eBay orders as getOrders returns them with fieldGroups=TAX_BREAKDOWN, newest version per orderId. With that
-- field group, pricingSummary.total and .tax count the tax eBay collects and remits, so total is what the buyer
-- paid whoever remits the tax; the contract's total_adds_up rule catches a feed read without it.
WITH parsed AS (
    SELECT
        record_key AS source_record_key,
        json_extract_string(raw, '$.orderId') AS channel_order_id,
        json_extract_string(raw, '$.fulfillmentStartInstructions[0].shippingStep.shipTo.email') AS customer_token,
        TRY_CAST(json_extract_string(raw, '$.creationDate') AS TIMESTAMPTZ) AS order_ts,
        TRY_CAST(json_extract_string(raw, '$.lastModifiedDate') AS TIMESTAMPTZ) AS updated_ts,
        json_extract_string(raw, '$.pricingSummary.total.currency') AS currency,
        TRY_CAST(json_extract_string(raw, '$.pricingSummary.priceSubtotal.value') AS DECIMAL(18, 2)) AS subtotal,
        -- eBay shows reductions as negative amounts; absent when there is none.
        abs(coalesce(
            TRY_CAST(json_extract_string(raw, '$.pricingSummary.priceDiscount.value') AS DECIMAL(18, 2)), 0
        )) AS discount,
        coalesce(
            TRY_CAST(json_extract_string(raw, '$.pricingSummary.deliveryCost.value') AS DECIMAL(18, 2)), 0
        ) AS shipping,
        -- Absent when the order bears no tax.
        coalesce(TRY_CAST(json_extract_string(raw, '$.pricingSummary.tax.value') AS DECIMAL(18, 2)), 0) AS tax,
        TRY_CAST(json_extract_string(raw, '$.pricingSummary.total.value') AS DECIMAL(18, 2)) AS total,
        -- Sent only when true.
        coalesce(json_extract_string(raw, '$.ebayCollectAndRemitTax') = 'true', FALSE) AS ebay_remits,
        coalesce(
            json_extract_string(raw, '$.buyer.taxAddress.countryCode'),
            json_extract_string(raw, '$.fulfillmentStartInstructions[0].shippingStep.shipTo.contactAddress.countryCode')
        ) AS tax_country,
        json_extract_string(raw, '$.buyer.taxAddress.stateOrProvince') AS tax_state,
        json_extract_string(
            raw, '$.fulfillmentStartInstructions[0].shippingStep.shipTo.contactAddress.countryCode'
        ) AS ship_country,
        -- The order's promise is its earliest line's (ISO strings in one format sort as instants).
        TRY_CAST(
            list_min(json_extract_string(raw, '$.lineItems[*].lineItemFulfillmentInstructions.shipByDate'))
            AS TIMESTAMPTZ
        ) AS ship_by_ts
    -- The engine starts the window lookback_days (1) early: a change landed the day after it happened is read.
    FROM @newest(bronze.ebay_orders)
)
SELECT
    'ebay:' || channel_order_id AS order_key,
    'ebay' AS channel,
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
    CASE WHEN ebay_remits THEN 'marketplace' ELSE 'seller' END AS tax_party,
    tax_country,
    -- A US state is a tax jurisdiction of its own; elsewhere the country is.
    CASE WHEN tax_country = 'US' THEN coalesce(tax_state, '') ELSE '' END AS tax_region,
    ship_country,
    ship_by_ts,
    CAST(NULL AS VARCHAR) AS discount_code,
    CAST(NULL AS VARCHAR) AS session_id,
    CAST(NULL AS VARCHAR) AS campaign,
    source_record_key
FROM parsed
