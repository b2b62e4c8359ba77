-- The refunds fact: one row per refund, at the refund date, in order currency and EUR.
SELECT
    r.refund_key,
    r.order_key,
    r.line_key,
    o.channel,
    o.store_id,
    o.customer_token,
    r.refund_date,
    r.refund_ts,
    o.order_date,
    r.currency,
    r.quantity,
    r.amount,
    r.tax,
    r.amount_base,
    r.tax_base,
    o.tax_party,
    o.tax_country,
    o.tax_region
FROM silver.refunds r
JOIN silver.orders o USING (order_key)
WHERE r.refund_date BETWEEN @start_date AND @end_date
