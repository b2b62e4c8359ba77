-- Every item on hand now, per location, with its age, value at cost, last sale and listing state: the list
-- operations works from to re-list, re-price or move stock. "Now" is the last day of mart_inventory.
WITH as_of AS (
    SELECT max(day) AS as_of_date FROM gold.mart_inventory
),
latest AS (
    -- The latest end-of-day stock per location and SKU (the warehouse has only its latest level anyway).
    SELECT location_key, location_name, sku, CAST(arg_max(on_hand_end, day) AS BIGINT) AS on_hand
    FROM gold.fct_inventory_daily
    GROUP BY ALL
),
acquired AS (
    SELECT sku, min(day) AS acquired_date FROM gold.fct_inventory_daily WHERE units_acquired > 0 GROUP BY sku
    UNION ALL
    -- The warehouse's movements are not on the wire: an item is bought in when it is created on Shopify.
    SELECT sku, CAST(created_ts AT TIME ZONE 'UTC' AS DATE) FROM silver.stg_shopify_products
),
sales AS (
    SELECT sku, sum(quantity) AS units_sold, max(order_date) AS last_sold_date
    FROM gold.fct_order_lines
    GROUP BY sku
),
items AS (
    SELECT
        a.as_of_date,
        c.location_key,
        c.location_name,
        c.sku,
        p.title,
        p.category,
        c.on_hand,
        p.unit_cost,
        c.on_hand * p.unit_cost AS value_at_cost,
        q.acquired_date,
        date_diff('day', q.acquired_date, a.as_of_date) AS age_days,
        coalesce(s.units_sold, 0) AS units_sold,
        s.last_sold_date,
        date_diff('day', coalesce(s.last_sold_date, q.acquired_date), a.as_of_date) AS days_without_sale,
        p.shopify_status,
        p.etsy_state,
        -- In stock, but a listing it has is no longer for sale: nobody online can buy it until it is re-listed.
        coalesce(p.shopify_status <> 'ACTIVE', false) OR coalesce(p.etsy_state <> 'active', false)
            AS listing_ended_on_hand
    FROM latest c
    CROSS JOIN as_of a
    JOIN gold.dim_product p ON p.sku = c.sku
    LEFT JOIN (SELECT sku, min(acquired_date) AS acquired_date FROM acquired GROUP BY sku) q ON q.sku = c.sku
    LEFT JOIN sales s ON s.sku = c.sku
    WHERE c.on_hand > 0
)
SELECT
    *,
    CASE
        WHEN age_days <= 30 THEN '0-30'
        WHEN age_days <= 90 THEN '31-90'
        WHEN age_days <= 180 THEN '91-180'
        ELSE 'over 180'
    END AS age_bucket,
    -- Why operations should act on it: a listing ended while stock remains, or nothing sold for 90 days.
    CASE
        WHEN listing_ended_on_hand THEN 'listing_ended'
        WHEN days_without_sale > 90 THEN 'no_sale_90d'
    END AS relist_reason
FROM items
