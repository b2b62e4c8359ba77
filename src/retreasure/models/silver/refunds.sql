-- Every channel's refunds in one shape, in EUR at the refund date's rate (the day the money went back).
WITH staged AS (
    SELECT * FROM silver.stg_shopify_refunds
    UNION ALL BY NAME SELECT * FROM silver.stg_ebay_refunds
    UNION ALL BY NAME SELECT * FROM silver.stg_etsy_refunds
    UNION ALL BY NAME SELECT * FROM silver.stg_pos_refunds
)
SELECT
    s.refund_key, s.order_key, s.line_key, s.channel, s.refund_ts, s.refund_date, s.quantity, s.amount, s.tax,
    s.currency, s.updated_ts,
    fx.rate_per_eur AS fx_rate,
    @to_base(s.amount, fx.rate_per_eur) AS amount_base,
    @to_base(s.tax, fx.rate_per_eur) AS tax_base
FROM staged s
LEFT JOIN silver.fx_rates fx ON fx.rate_date = s.refund_date AND fx.currency = s.currency
WHERE s.refund_date BETWEEN @start_date AND @end_date
