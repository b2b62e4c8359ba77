-- One row per known buyer, across every channel: the PII token of the e-mail joins one person's Shopify,
-- eBay, Etsy and loyalty-card store purchases. Walk-ins without a loyalty e-mail are anonymous and have no row.
-- Money comes from the line and refund facts so that it adds up with gold.mart_sales_daily to the cent.
WITH buyers AS (
    SELECT
        customer_token,
        min(order_date) AS first_order_date,
        max(order_date) AS last_order_date,
        count(*) AS orders,
        count(DISTINCT channel) AS channels
    FROM silver.orders
    WHERE customer_token IS NOT NULL
    GROUP BY customer_token
),
sales AS (
    SELECT customer_token, sum(gross_base) AS gross_sales, sum(discount_base) AS discounts
    FROM gold.fct_order_lines
    WHERE customer_token IS NOT NULL
    GROUP BY customer_token
),
refunds AS (
    SELECT customer_token, sum(amount_base) AS refunds
    FROM gold.fct_refunds
    WHERE customer_token IS NOT NULL
    GROUP BY customer_token
),
money AS (
    SELECT
        o.customer_token,
        o.first_order_date,
        o.last_order_date,
        o.orders,
        o.channels,
        coalesce(s.gross_sales, 0) AS gross_sales,
        coalesce(s.discounts, 0) AS discounts,
        coalesce(r.refunds, 0) AS refunds
    FROM buyers o
    LEFT JOIN sales s ON s.customer_token = o.customer_token
    LEFT JOIN refunds r ON r.customer_token = o.customer_token
)
SELECT
    customer_token,
    first_order_date,
    CAST(date_trunc('month', first_order_date) AS DATE) AS cohort_month,
    last_order_date,
    CAST(orders AS INTEGER) AS orders,
    CAST(channels AS INTEGER) AS channels,
    gross_sales,
    discounts,
    refunds,
    gross_sales - discounts - refunds AS net_revenue,
    -- The table is rebuilt in full, so "to date" is the build's date: lifetime value is the net revenue so far.
    gross_sales - discounts - refunds AS lifetime_value,
    CASE WHEN orders > 1 THEN 'repeat' ELSE 'new' END AS customer_type
FROM money
