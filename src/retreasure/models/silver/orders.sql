-- Every channel's orders in one shape, each money field also in EUR at the order date's ECB rate.
WITH staged AS (
    SELECT * FROM silver.stg_shopify_orders
    UNION ALL BY NAME SELECT * FROM silver.stg_ebay_orders
    UNION ALL BY NAME SELECT * FROM silver.stg_etsy_orders
    UNION ALL BY NAME SELECT * FROM silver.stg_pos_orders
)
SELECT
    s.order_key, s.channel, s.channel_order_id, s.store_id, s.customer_token, s.order_ts, s.order_date,
    s.updated_ts, s.currency, s.subtotal, s.discount, s.shipping, s.tax, s.total, s.tax_party, s.tax_country,
    s.tax_region, s.ship_country, s.ship_by_ts, s.discount_code, s.session_id, s.campaign,
    fx.rate_per_eur AS fx_rate,
    @to_base(s.subtotal, fx.rate_per_eur) AS subtotal_base,
    @to_base(s.discount, fx.rate_per_eur) AS discount_base,
    @to_base(s.shipping, fx.rate_per_eur) AS shipping_base,
    @to_base(s.tax, fx.rate_per_eur) AS tax_base,
    @to_base(s.total, fx.rate_per_eur) AS total_base
FROM staged s
LEFT JOIN silver.fx_rates fx ON fx.rate_date = s.order_date AND fx.currency = s.currency
WHERE s.order_date BETWEEN @start_date AND @end_date
