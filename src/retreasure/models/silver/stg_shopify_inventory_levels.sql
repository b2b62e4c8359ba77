-- Available stock per Shopify inventory item and location, newest version of each level. A window's run reads the
-- versions that landed in it and merges them into the table by level (write mode merge).
WITH parsed AS (
    SELECT
        record_key AS source_record_key,
        regexp_extract(json_extract_string(raw, '$.item.id'), '([0-9]+)$', 1) AS inventory_item_id,
        regexp_extract(json_extract_string(raw, '$.location.id'), '([0-9]+)$', 1) AS location_id,
        json_extract_string(raw, '$.location.name') AS location_name,
        json_extract_string(raw, '$.item.sku') AS sku,
        -- quantities holds one entry per name asked for; only "available" is asked.
        list_filter(
            TRY_CAST(json_extract(raw, '$.quantities') AS VARCHAR[]),
            q -> json_extract_string(q, '$.name') = 'available'
        )[1] AS available_quantity,
        TRY_CAST(json_extract_string(raw, '$.updatedAt') AS TIMESTAMPTZ) AS updated_ts,
        -- The item's unitCost, carried into each of its levels by the connector (the shop's currency).
        TRY_CAST(json_extract_string(raw, '$.item.unitCost.amount') AS DECIMAL(18, 2)) AS unit_cost,
        json_extract_string(raw, '$.item.unitCost.currencyCode') AS unit_cost_currency
    FROM @newest(bronze.shopify_inventory_levels)
)
SELECT
    'shopify:' || location_id || '/' || inventory_item_id AS level_key,
    sku,
    inventory_item_id,
    location_id,
    location_name,
    TRY_CAST(json_extract_string(available_quantity, '$.quantity') AS INTEGER) AS available,
    updated_ts,
    unit_cost,
    unit_cost_currency,
    source_record_key
FROM parsed
