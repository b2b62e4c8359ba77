-- The refunds fact: one row per refund, at the refund date, in order currency and EUR.
SELECT
    r.refund_key,
    r.order_key,
    r.line_key,
    r.channel,
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
-- Left join: a refund whose order has not landed yet (a marketplace or a store delivering the order late) is kept
-- to the row rule that holds it back, with a reason, rather than dropped unseen; the contract's reach rule brings
-- it back on its refund day once its order lands.
LEFT JOIN silver.orders o USING (order_key)
WHERE r.refund_date BETWEEN @start_date AND @end_date
