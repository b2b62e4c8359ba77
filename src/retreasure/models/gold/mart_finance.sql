-- Revenue by month and channel for the accounts, with the FX effect: what converting each sale at its own
-- order day's rate (the KPI convention) changed against converting it at the month's closing rate. A
-- positive effect means the euro strengthened after the sale, so the month closed worth less in EUR.
-- Cost of goods is booked in the order's month and reversed in the refund's month for returned goods (every
-- return is restocked), so gross margin = net revenue - cost of goods matches revenue and refunds month by month.
-- A window is whole months (the engine widens it to them): each month is computed from all of its days.
WITH lines AS (
    SELECT
        CAST(date_trunc('month', order_date) AS DATE) AS month,
        channel,
        currency,
        order_key,
        gross,
        discount,
        gross_base,
        discount_base,
        cost_of_goods
    FROM gold.fct_order_lines
    WHERE order_date BETWEEN @start_date AND @end_date
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
        sum(l.cost_of_goods) AS cost_of_sales,
        count(*) FILTER (WHERE l.cost_of_goods IS NULL) AS lines_without_cost,
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
    SELECT
        CAST(date_trunc('month', r.refund_date) AS DATE) AS month,
        r.channel,
        sum(r.amount_base) AS refunds,
        -- The returned units' cost comes back into stock, at the SKU's cost (the line's, fct_order_lines' unit_cost),
        -- read from product_costs so that a new cost reaches the refunds' months by the contract's rule. A refund
        -- that names no line (Etsy, when two lines of the receipt are worth the same) cannot say which goods came
        -- back, so it reverses no cost.
        coalesce(sum(pc.unit_cost * r.quantity), 0) AS cost_returned
    FROM gold.fct_refunds r
    LEFT JOIN gold.fct_order_lines l ON l.line_key = r.line_key
    LEFT JOIN silver.product_costs pc ON pc.sku = l.sku
    WHERE r.refund_date BETWEEN @start_date AND @end_date
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
        coalesce(s.cost_of_sales, 0) - coalesce(r.cost_returned, 0) AS cost_of_goods,
        coalesce(s.lines_without_cost, 0) AS lines_without_cost,
        CASE WHEN s.month IS NULL THEN 0 ELSE s.revenue_at_closing_rate END AS revenue_at_closing_rate
    FROM sales s
    FULL OUTER JOIN refunds r ON r.month = s.month AND r.channel = s.channel
),
totals AS (
    SELECT
        *,
        gross_sales - discounts - refunds AS net_revenue,
        gross_sales - discounts - refunds - cost_of_goods AS gross_margin
    FROM joined
)
SELECT
    month,
    channel,
    CAST(orders AS INTEGER) AS orders,
    gross_sales,
    discounts,
    gross_sales - discounts AS revenue,
    refunds,
    net_revenue,
    revenue_at_closing_rate,
    gross_sales - discounts - revenue_at_closing_rate AS fx_effect,
    cost_of_goods,
    gross_margin,
    -- 100 * margin / net revenue to 2 decimals, half away from zero, on integer cents: exact, as money is.
    CASE WHEN net_revenue <> 0 THEN
        CAST(
            sign(gross_margin) * sign(net_revenue)
            * ((abs(CAST(gross_margin * 100 AS BIGINT)) * 20000 + abs(CAST(net_revenue * 100 AS BIGINT)))
                // (2 * abs(CAST(net_revenue * 100 AS BIGINT))))
            AS DECIMAL(18, 0)
        ) * CAST(0.01 AS DECIMAL(3, 2))
    END AS gross_margin_pct,
    CAST(lines_without_cost AS INTEGER) AS lines_without_cost
FROM totals
