-- Daily spend per ad campaign from every platform's report. Each platform names and orders its columns its
-- own way (Google: cost, currency_code, date; Meta: spend, account_currency, date_start); bronze keeps the
-- cells by name and keys each row "<platform>/<campaign_id>/<day>", which is where platform, campaign and day
-- are read from, whatever the dialect. A report re-sent for the same day restates it: the newest landing wins.
SELECT
    regexp_extract(record_key, '^([^/]+)/(.+)/([^/]+)$', 1) AS platform,
    regexp_extract(record_key, '^([^/]+)/(.+)/([^/]+)$', 2) AS campaign_id,
    TRY_CAST(regexp_extract(record_key, '^([^/]+)/(.+)/([^/]+)$', 3) AS DATE) AS spend_date,
    json_extract_string(raw, '$.campaign_name') AS campaign_name,
    TRY_CAST(coalesce(json_extract_string(raw, '$.cost'), json_extract_string(raw, '$.spend')) AS DECIMAL(18, 2))
        AS spend,
    coalesce(
        json_extract_string(raw, '$.currency_code'),
        json_extract_string(raw, '$.account_currency'),
        json_extract_string(raw, '$.currency')
    ) AS currency,
    TRY_CAST(json_extract_string(raw, '$.clicks') AS BIGINT) AS clicks,
    TRY_CAST(json_extract_string(raw, '$.impressions') AS BIGINT) AS impressions,
    ingested_at AS updated_ts,
    record_key AS source_record_key
FROM @newest(bronze.ads_spend, ingested_at)
