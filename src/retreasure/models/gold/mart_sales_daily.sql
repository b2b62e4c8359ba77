-- Sales by day, channel, store and product category in EUR: what leadership reads first. Line figures (gross,
-- discounts, units) sit on each line's category and refunds on the refunded line's; an order's own figures (the
-- order itself, its shipping) sit on the row of its first line's category, so every column adds up along any
-- dimension and the day's totals are the sum of its rows.
WITH lines AS (
    SELECT
        l.order_date AS day,
        l.channel,
        l.store_id,
        coalesce(p.category, 'uncategorised') AS category,
        l.order_key,
        l.quantity,
        l.gross_base,
        l.discount_base,
        -- The first line by key: any fixed choice would do, as long as each order has exactly one.
        row_number() OVER (PARTITION BY l.order_key ORDER BY l.line_key) = 1 AS first_line
    FROM gold.fct_order_lines l
    LEFT JOIN gold.dim_product p ON p.sku = l.sku
    WHERE l.order_date BETWEEN @start_date AND @end_date
),
sales AS (
    SELECT
        l.day,
        l.channel,
        l.store_id,
        l.category,
        count(*) FILTER (WHERE l.first_line) AS orders,
        sum(l.quantity) AS units,
        sum(l.gross_base) AS gross_sales,
        sum(l.discount_base) AS discounts,
        coalesce(sum(o.shipping_base) FILTER (WHERE l.first_line), 0) AS shipping
    FROM lines l
    LEFT JOIN silver.orders o ON o.order_key = l.order_key AND l.first_line
    GROUP BY ALL
),
refunds AS (
    SELECT
        r.refund_date AS day,
        r.channel,
        r.store_id,
        -- A refund that names no line (Etsy, two lines of equal value) cannot say what came back.
        CASE WHEN l.line_key IS NULL THEN 'unknown' ELSE coalesce(p.category, 'uncategorised') END AS category,
        sum(r.amount_base) AS refunds
    FROM gold.fct_refunds r
    LEFT JOIN gold.fct_order_lines l ON l.line_key = r.line_key
    LEFT JOIN gold.dim_product p ON p.sku = l.sku
    WHERE r.refund_date BETWEEN @start_date AND @end_date
    GROUP BY ALL
),
keyed AS (
    SELECT
        coalesce(s.day, r.day) AS day,
        coalesce(s.channel, r.channel) AS channel,
        coalesce(s.store_id, r.store_id) AS store_id,
        coalesce(s.category, r.category) AS category,
        coalesce(s.orders, 0) AS orders,
        coalesce(s.units, 0) AS units,
        coalesce(s.gross_sales, 0) AS gross_sales,
        coalesce(s.discounts, 0) AS discounts,
        coalesce(r.refunds, 0) AS refunds,
        coalesce(s.shipping, 0) AS shipping
    FROM sales s
    FULL OUTER JOIN refunds r
        ON r.day = s.day AND r.channel = s.channel AND r.store_id IS NOT DISTINCT FROM s.store_id
        AND r.category = s.category
)
SELECT
    day,
    channel,
    store_id,
    category,
    CAST(orders AS INTEGER) AS orders,
    CAST(units AS BIGINT) AS units,
    gross_sales,
    discounts,
    gross_sales - discounts AS net_sales,
    refunds,
    gross_sales - discounts - refunds AS net_revenue,
    shipping,
    -- (net sales + shipping) per order, to the cent half up, on integer cents: exact, as money is.
    CASE WHEN orders > 0 THEN
        CAST((CAST((gross_sales - discounts + shipping) * 100 AS BIGINT) * 2 + orders) // (2 * orders) AS DECIMAL(18, 0))
        * CAST(0.01 AS DECIMAL(3, 2))
    END AS aov
FROM keyed
