-- Stock per SKU, location and day with movement. The stores' tills export every movement, so their days are
-- complete; Shopify's API gives only the current level per warehouse item, so the warehouse contributes one
-- row per item: its level at the end of the day of its last movement, with the movements themselves unknown.
WITH pos AS (
    SELECT
        'pos:' || store_id AS location_key,
        store_id AS location_name,
        'pos' AS source,
        sku,
        moved_date AS day,
        count(*) AS movements,
        sum(quantity_change) FILTER (WHERE reason = 'acquired') AS units_acquired,
        -sum(quantity_change) FILTER (WHERE reason = 'sold') AS units_sold,
        sum(quantity_change) FILTER (WHERE reason = 'restocked') AS units_restocked,
        sum(quantity_change) AS net_change,
        -- The till numbers its movements in order; an instant can hold several (a receipt's lines).
        arg_max(on_hand_after, (moved_ts, movement_id)) AS on_hand_end
    FROM silver.stg_pos_inventory
    GROUP BY ALL
),
warehouse AS (
    SELECT
        'shopify:' || location_id AS location_key,
        location_name,
        'shopify' AS source,
        sku,
        CAST(updated_ts AT TIME ZONE 'UTC' AS DATE) AS day,
        CAST(NULL AS BIGINT) AS movements,
        CAST(NULL AS HUGEINT) AS units_acquired,
        CAST(NULL AS HUGEINT) AS units_sold,
        CAST(NULL AS HUGEINT) AS units_restocked,
        CAST(NULL AS HUGEINT) AS net_change,
        available AS on_hand_end
    FROM silver.stg_shopify_inventory_levels
)
SELECT
    location_key, location_name, source, sku, day, movements,
    coalesce(units_acquired, 0) AS units_acquired,
    coalesce(units_sold, 0) AS units_sold,
    coalesce(units_restocked, 0) AS units_restocked,
    net_change,
    on_hand_end
FROM pos
UNION ALL
SELECT
    location_key, location_name, source, sku, day, movements,
    units_acquired, units_sold, units_restocked, net_change, on_hand_end
FROM warehouse
