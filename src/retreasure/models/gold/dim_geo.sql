-- Where customers are and which delivery zone serves them: the zone version in force on the day the customer
-- was located (silver.geo resolved the point-in-zone), with that version's name and fee.
SELECT
    g.customer_id,
    g.located_date,
    g.country,
    g.city,
    g.postal_code,
    g.lat,
    g.lon,
    g.zone_id,
    g.zone_valid_from,
    z.name AS zone_name,
    z.fee AS zone_fee,
    z.currency AS zone_currency,
    g.zone_id IS NOT NULL AS is_deliverable,
    g.zones_matched
FROM silver.geo g
LEFT JOIN silver.delivery_zones z ON z.zone_id = g.zone_id AND z.valid_from = g.zone_valid_from
