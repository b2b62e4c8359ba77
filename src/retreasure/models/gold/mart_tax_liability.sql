-- Tax by month, jurisdiction and who remits it: what the seller owes and what a marketplace collected. A window is
-- whole months (the engine widens it to them), so each month is summed from all of its days.
WITH collected AS (
    SELECT
        date_trunc('month', order_date) AS month, tax_party, tax_country, tax_region,
        sum(tax_base) AS tax_collected
    FROM silver.orders
    WHERE order_date BETWEEN @start_date AND @end_date
    GROUP BY ALL
),
refunded AS (
    SELECT
        date_trunc('month', refund_date) AS month, tax_party, tax_country, tax_region,
        sum(tax_base) AS tax_refunded
    FROM gold.fct_refunds
    WHERE refund_date BETWEEN @start_date AND @end_date
    GROUP BY ALL
)
SELECT
    CAST(month AS DATE) AS month,
    tax_party,
    tax_country,
    tax_region,
    coalesce(c.tax_collected, 0) AS tax_collected,
    coalesce(r.tax_refunded, 0) AS tax_refunded,
    coalesce(c.tax_collected, 0) - coalesce(r.tax_refunded, 0) AS tax_liability
FROM collected c
FULL OUTER JOIN refunded r USING (month, tax_party, tax_country, tax_region)
