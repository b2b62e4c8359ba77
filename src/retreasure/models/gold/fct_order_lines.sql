-- The sales fact: one row per order line, with its order's context, in order currency and in EUR.
SELECT
    l.line_key,
    l.order_key,
    o.channel,
    o.store_id,
    o.customer_token,
    l.sku,
    l.order_date,
    l.order_ts,
    o.currency,
    l.quantity,
    l.unit_price,
    l.gross,
    l.discount,
    l.tax,
    l.gross_base,
    l.discount_base,
    l.gross_base - l.discount_base AS net_sales_base,
    l.tax_base,
    o.tax_party,
    o.tax_country,
    o.tax_region,
    o.campaign
FROM silver.order_lines l
JOIN silver.orders o USING (order_key)
WHERE l.order_date BETWEEN @start_date AND @end_date
