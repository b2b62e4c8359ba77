-- Every currency on every day with its ECB rate. A cross rate needs no table of its own: both legs are quoted
-- per EUR, so units of B per unit of A on a day = B.rate_per_eur / A.rate_per_eur (join this table to itself on
-- rate_date). Round only the final amount, as the KPI rules do, never the cross rate.
SELECT
    rate_date,
    currency,
    rate_per_eur,
    -- Indicative only: money is converted with the to_base macro (exact integer arithmetic), not with this column.
    CAST(1 AS DECIMAL(18, 6)) / rate_per_eur AS eur_per_unit,
    CASE currency WHEN 'JPY' THEN 0 ELSE 2 END AS minor_units,
    published_date,
    is_published,
    currency = 'EUR' AS is_base
FROM silver.fx_rates
