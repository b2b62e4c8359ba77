-- Sales by month and channel in EUR, with growth against the previous month: the trend leadership reads. A window
-- is whole months (the engine widens it to them, and to the month after, whose growth reads the window's last).
WITH months AS (
    SELECT
        CAST(date_trunc('month', day) AS DATE) AS month,
        channel,
        sum(orders) AS orders,
        sum(units) AS units,
        sum(gross_sales) AS gross_sales,
        sum(discounts) AS discounts,
        sum(refunds) AS refunds,
        sum(net_revenue) AS net_revenue,
        sum(shipping) AS shipping
    FROM gold.mart_sales_daily
    -- The month before the window too: its net revenue is the first month's base.
    WHERE day BETWEEN CAST(@start_date AS DATE) - INTERVAL 1 MONTH AND @end_date
    GROUP BY ALL
),
compared AS (
    SELECT
        m.*,
        -- The calendar month before, not the row before: a channel without sales last month has no base.
        p.net_revenue AS net_revenue_prev_month
    FROM months m
    LEFT JOIN months p ON p.channel = m.channel AND p.month = m.month - INTERVAL 1 MONTH
    WHERE m.month >= @start_date
)
SELECT
    month,
    channel,
    CAST(orders AS INTEGER) AS orders,
    CAST(units AS BIGINT) AS units,
    gross_sales,
    discounts,
    gross_sales - discounts AS net_sales,
    refunds,
    net_revenue,
    shipping,
    CASE WHEN orders > 0 THEN
        CAST((CAST((gross_sales - discounts + shipping) * 100 AS BIGINT) * 2 + orders) // (2 * orders) AS DECIMAL(18, 0))
        * CAST(0.01 AS DECIMAL(3, 2))
    END AS aov,
    net_revenue_prev_month,
    -- 100 * (this month - last month) / |last month|, to 2 decimals half away from zero, on integer cents.
    CASE WHEN net_revenue_prev_month <> 0 THEN
        CAST(
            sign(net_revenue - net_revenue_prev_month)
            * ((abs(CAST((net_revenue - net_revenue_prev_month) * 100 AS BIGINT)) * 20000
                + abs(CAST(net_revenue_prev_month * 100 AS BIGINT)))
                // (2 * abs(CAST(net_revenue_prev_month * 100 AS BIGINT))))
            AS DECIMAL(18, 0)
        ) * CAST(0.01 AS DECIMAL(3, 2))
    END AS growth_pct
FROM compared
