-- The sales fact: one row per order line, with its order's context, in order currency and in EUR, and what the
-- goods sold cost us (the item's unit cost from silver.product_costs, EUR).
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
    o.campaign,
    c.unit_cost,
    -- Cost is booked when the goods leave (the sale); a return puts them back on the shelf and its cost is
    -- reversed in mart_finance on the refund's day, as refunds are.
    c.unit_cost * l.quantity AS cost_of_goods
FROM silver.order_lines l
JOIN silver.orders o USING (order_key)
LEFT JOIN silver.product_costs c ON c.sku = l.sku
WHERE l.order_date BETWEEN @start_date AND @end_date
