-- One row per calendar day the business has data for: the span of the ECB calendar (which starts at the
-- first published rate and runs ten days past the last one), so every order, refund and shipment date joins.
WITH days AS (
    SELECT DISTINCT rate_date AS date_day FROM silver.fx_rates
),
ecb AS (
    -- The ECB publishes every currency on the same TARGET business days; USD is always in the set.
    SELECT rate_date AS date_day, bool_or(is_published) AS is_ecb_business_day
    FROM silver.fx_rates
    WHERE currency <> 'EUR'
    GROUP BY ALL
)
SELECT
    d.date_day,
    CAST(year(d.date_day) AS INTEGER) AS year,
    CAST(quarter(d.date_day) AS INTEGER) AS quarter,
    CAST(month(d.date_day) AS INTEGER) AS month,
    CAST(day(d.date_day) AS INTEGER) AS day_of_month,
    CAST(isodow(d.date_day) AS INTEGER) AS iso_day_of_week,
    CAST(weekofyear(d.date_day) AS INTEGER) AS iso_week,
    CAST(date_trunc('month', d.date_day) AS DATE) AS month_start,
    CAST(date_trunc('week', d.date_day) AS DATE) AS week_start,
    isodow(d.date_day) >= 6 AS is_weekend,
    coalesce(e.is_ecb_business_day, FALSE) AS is_ecb_business_day
FROM days d
LEFT JOIN ecb e USING (date_day)
