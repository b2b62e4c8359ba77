-- The business's own shops, as reference data: the tills export no store master, and tax, currency and local
-- time all hang off the store. Keep in step with retreasure_sim.world.STORES when a store opens or closes.
SELECT
    store_id,
    name,
    city,
    country,
    -- POS tax is the store's jurisdiction; only US stores have a state that taxes separately.
    region,
    currency,
    timezone
FROM (
    VALUES
        ('BER', 'ReTreasure Berlin Mitte', 'Berlin', 'DE', '', 'EUR', 'Europe/Berlin'),
        ('LON', 'ReTreasure London Camden', 'London', 'GB', '', 'GBP', 'Europe/London'),
        ('NYC', 'ReTreasure Brooklyn', 'New York', 'US', 'NY', 'USD', 'America/New_York')
) AS s(store_id, name, city, country, region, currency, timezone)
