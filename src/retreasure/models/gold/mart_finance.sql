-- Revenue by month and channel for the accounts, with the FX effect: what converting each sale at its own
-- order day's rate (the KPI convention) changed against converting it at the month's closing rate. A
-- positive effect means the euro strengthened after the sale, so the month closed worth less in EUR.
WITH lines AS (
    SELECT
        CAST(date_trunc('month', order_date) AS DATE) AS month,
        channel,
        currency,
        order_key,
        gross,
        discount,
        gross_base,
        discount_base
    FROM gold.fct_order_lines
),
-- The closing rate is the one on the month's last day; for a month still open (or past the last published
-- rate) it is the latest rate known, the same carry-forward a weekend gets.
closing AS (
    SELECT
        m.month,
        m.currency,
        arg_max(fx.rate_per_eur, fx.rate_date) AS closing_rate
    FROM (SELECT DISTINCT month, currency FROM lines) m
    JOIN silver.fx_rates fx
        ON fx.currency = m.currency
        AND fx.rate_date < m.month + INTERVAL 1 MONTH
    GROUP BY m.month, m.currency
),
sales AS (
    SELECT
        l.month,
        l.channel,
        count(DISTINCT l.order_key) AS orders,
        sum(l.gross_base) AS gross_sales,
        sum(l.discount_base) AS discounts,
        -- Empty, not short, when a currency has no closing rate: the not_null check then catches it.
        CASE
            WHEN count(*) FILTER (WHERE c.closing_rate IS NULL) = 0
                THEN sum(@to_base(l.gross, c.closing_rate) - @to_base(l.discount, c.closing_rate))
        END AS revenue_at_closing_rate
    FROM lines l
    LEFT JOIN closing c ON c.month = l.month AND c.currency = l.currency
    GROUP BY l.month, l.channel
),
refunds AS (
    SELECT CAST(date_trunc('month', refund_date) AS DATE) AS month, channel, sum(amount_base) AS refunds
    FROM gold.fct_refunds
    GROUP BY ALL
),
joined AS (
    SELECT
        coalesce(s.month, r.month) AS month,
        coalesce(s.channel, r.channel) AS channel,
        coalesce(s.orders, 0) AS orders,
        coalesce(s.gross_sales, 0) AS gross_sales,
        coalesce(s.discounts, 0) AS discounts,
        coalesce(r.refunds, 0) AS refunds,
        CASE WHEN s.month IS NULL THEN 0 ELSE s.revenue_at_closing_rate END AS revenue_at_closing_rate
    FROM sales s
    FULL OUTER JOIN refunds r ON r.month = s.month AND r.channel = s.channel
)
SELECT
    month,
    channel,
    CAST(orders AS INTEGER) AS orders,
    gross_sales,
    discounts,
    gross_sales - discounts AS revenue,
    refunds,
    gross_sales - discounts - refunds AS net_revenue,
    revenue_at_closing_rate,
    gross_sales - discounts - revenue_at_closing_rate AS fx_effect
FROM joined
