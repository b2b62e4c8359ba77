-- Daily reference rates per EUR for every calendar day: ECB publishes on TARGET business days only, so a
-- weekend or holiday carries the previous business day's rate forward (up to 10 days past the last one).
-- Bronze holds one record per currency and business day, keyed '<day>/<currency>': its day's Cube around the one
-- rate, <Cube time="2025-03-04"><Cube currency="USD" rate="1.0812"/></Cube>. A currency whose rate of a day was
-- quarantined carries its previous rate over that day, as on a closed day.
WITH published AS (
    -- The day's attributes are in the first tag, the rate's in the second, in whichever order the file had them.
    SELECT
        record_key,
        CAST(regexp_extract(raw, '^<Cube[^>]* time="([0-9]{4}-[0-9]{2}-[0-9]{2})"', 1) AS DATE) AS published_date,
        regexp_extract(raw, '^<Cube[^>]*><Cube[^>]* currency="([A-Z]{3})"', 1) AS currency,
        regexp_extract(raw, '^<Cube[^>]*><Cube[^>]* rate="([^"]*)"', 1) AS rate_text
    FROM @newest(bronze.ecb_fx_rates)
),
bounds AS (
    SELECT min(published_date) AS first_day, max(published_date) + INTERVAL 10 DAY AS last_day FROM published
),
calendar AS (
    SELECT CAST(day AS DATE) AS rate_date
    FROM bounds, unnest(generate_series(first_day, last_day, INTERVAL 1 DAY)) AS t(day)
),
grid AS (
    SELECT c.rate_date, cur.currency
    FROM calendar c CROSS JOIN (SELECT DISTINCT currency FROM published) cur
),
filled AS (
    SELECT
        g.rate_date,
        g.currency,
        p.rate_text,
        p.record_key,
        last_value(p.published_date IGNORE NULLS) OVER w AS published_date,
        last_value(p.rate_text IGNORE NULLS) OVER w AS carried_rate
    FROM grid g
    LEFT JOIN published p ON p.published_date = g.rate_date AND p.currency = g.currency
    WINDOW w AS (PARTITION BY g.currency ORDER BY g.rate_date ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT
    rate_date,
    currency,
    TRY_CAST(carried_rate AS DECIMAL(18, 6)) AS rate_per_eur,
    published_date,
    rate_date = published_date AS is_published,
    record_key AS source_record_key
FROM filled
WHERE published_date IS NOT NULL
UNION ALL
-- The base currency converts to itself, so that conversions need no special case.
SELECT rate_date, 'EUR', CAST(1 AS DECIMAL(18, 6)), rate_date, TRUE, NULL FROM calendar
