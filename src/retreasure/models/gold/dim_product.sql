-- The product conformed across channels: the SKU is the product everywhere. Shopify lists every
-- warehouse product and carries the attributes (type and tags); Etsy adds its listing for the ones it sells;
-- store-only goods appear only on the tills' stock and sales exports, which carry no attributes.
WITH skus AS (
    SELECT sku FROM silver.stg_shopify_products
    UNION SELECT sku FROM silver.stg_etsy_listings
    UNION SELECT sku FROM silver.stg_pos_inventory
    UNION SELECT sku FROM silver.order_lines
),
store_stock AS (
    SELECT
        sku,
        -- A store-only item is stocked at one store; the earliest movement names it.
        arg_min(store_id, moved_ts) AS store_id,
        min(moved_date) FILTER (WHERE reason = 'acquired') AS acquired_date
    FROM silver.stg_pos_inventory
    GROUP BY ALL
),
sold AS (
    SELECT
        sku,
        list_sort(list(DISTINCT channel)) AS sold_on,
        sum(quantity) AS units_sold,
        min(order_date) AS first_sold_date
    FROM silver.order_lines
    GROUP BY ALL
)
SELECT
    k.sku,
    coalesce(p.title, e.title) AS title,
    p.category,
    p.era,
    p.material,
    p.condition,
    p.price AS list_price,
    p.currency AS list_currency,
    p.status AS shopify_status,
    e.listing_id AS etsy_listing_id,
    e.state AS etsy_state,
    p.sku IS NOT NULL AS on_shopify,
    e.sku IS NOT NULL AS on_etsy,
    CASE WHEN p.sku IS NOT NULL THEN 'WH' ELSE s.store_id END AS home_location,
    coalesce(CAST(p.created_ts AS DATE), s.acquired_date) AS first_seen_date,
    coalesce(d.sold_on, []) AS sold_on,
    coalesce(d.units_sold, 0) AS units_sold,
    d.first_sold_date,
    c.unit_cost,
    c.source AS cost_source
FROM skus k
LEFT JOIN silver.stg_shopify_products p ON p.sku = k.sku
LEFT JOIN silver.stg_etsy_listings e ON e.sku = k.sku
LEFT JOIN store_stock s ON s.sku = k.sku
LEFT JOIN sold d ON d.sku = k.sku
LEFT JOIN silver.product_costs c ON c.sku = k.sku
