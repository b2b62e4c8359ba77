-- Every channel's order lines in one shape, amounts also in EUR at the order date's ECB rate.
WITH staged AS (
    SELECT * FROM silver.stg_shopify_order_lines
    UNION ALL BY NAME SELECT * FROM silver.stg_ebay_order_lines
    UNION ALL BY NAME SELECT * FROM silver.stg_etsy_order_lines
    UNION ALL BY NAME SELECT * FROM silver.stg_pos_order_lines
)
SELECT
    s.line_key, s.order_key, s.channel, s.sku, s.quantity, s.unit_price, s.gross, s.discount, s.tax, s.tax_rate,
    s.currency, s.order_ts, s.order_date, s.updated_ts,
    fx.rate_per_eur AS fx_rate,
    @to_base(s.gross, fx.rate_per_eur) AS gross_base,
    @to_base(s.discount, fx.rate_per_eur) AS discount_base,
    @to_base(s.tax, fx.rate_per_eur) AS tax_base
FROM staged s
LEFT JOIN silver.fx_rates fx ON fx.rate_date = s.order_date AND fx.currency = s.currency
WHERE s.order_date BETWEEN @start_date AND @end_date
