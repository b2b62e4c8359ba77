-- What each item cost us per unit, in EUR, from whichever wire carries it: Shopify's inventory item cost for
-- the warehouse's goods, the stores' ERP cost on the movement that bought an item in for store-only goods.
WITH shopify AS (
    SELECT
        sku,
        -- One item per SKU; a cost on several locations' levels is the same item's cost.
        max(unit_cost) AS unit_cost,
        max(updated_ts) AS updated_ts
    FROM silver.stg_shopify_inventory_levels
    -- The shop books cost in its own currency, EUR; a cost in another currency is not a EUR cost.
    WHERE unit_cost IS NOT NULL AND unit_cost_currency = 'EUR'
    GROUP BY sku
),
pos AS (
    SELECT
        sku,
        -- A store buys an item in once; should it buy more of the same SKU, the newest cost stands.
        arg_max(unit_cost, (moved_ts, movement_id)) AS unit_cost,
        max(moved_ts) AS updated_ts
    FROM silver.stg_pos_inventory
    WHERE reason = 'acquired' AND unit_cost IS NOT NULL
    GROUP BY sku
)
SELECT sku, unit_cost, 'shopify' AS source, updated_ts FROM shopify
UNION ALL
-- A SKU is either a warehouse item (on Shopify) or a store-only item; if both named it, Shopify's cost wins.
SELECT sku, unit_cost, 'pos' AS source, updated_ts FROM pos WHERE sku NOT IN (SELECT sku FROM shopify)
