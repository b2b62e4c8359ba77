-- Sales by day and channel in EUR: what leadership reads first.
WITH days AS (
    SELECT order_date AS day, channel FROM gold.fct_order_lines WHERE order_date BETWEEN @start_date AND @end_date
    UNION SELECT refund_date, channel FROM gold.fct_refunds WHERE refund_date BETWEEN @start_date AND @end_date
),
sales AS (
    SELECT
        order_date AS day,
        channel,
        count(DISTINCT order_key) AS orders,
        sum(gross_base) AS gross_sales,
        sum(discount_base) AS discounts
    FROM gold.fct_order_lines
    WHERE order_date BETWEEN @start_date AND @end_date
    GROUP BY ALL
),
shipping AS (
    SELECT order_date AS day, channel, sum(shipping_base) AS shipping
    FROM silver.orders
    WHERE order_date BETWEEN @start_date AND @end_date
    GROUP BY ALL
),
refunds AS (
    SELECT refund_date AS day, channel, sum(amount_base) AS refunds
    FROM gold.fct_refunds
    WHERE refund_date BETWEEN @start_date AND @end_date
    GROUP BY ALL
)
SELECT
    d.day,
    d.channel,
    coalesce(s.orders, 0) AS orders,
    coalesce(s.gross_sales, 0) AS gross_sales,
    coalesce(s.discounts, 0) AS discounts,
    coalesce(r.refunds, 0) AS refunds,
    coalesce(s.gross_sales, 0) - coalesce(s.discounts, 0) - coalesce(r.refunds, 0) AS net_revenue,
    coalesce(h.shipping, 0) AS shipping
FROM days d
LEFT JOIN sales s USING (day, channel)
LEFT JOIN refunds r USING (day, channel)
LEFT JOIN shipping h USING (day, channel)
