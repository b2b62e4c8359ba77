-- The catalogue on Shopify: one row per variant (the shop lists one variant, one SKU, per product), newest
-- version of each product. A window's run reads the versions that landed in it and merges them into the table by
-- SKU (write mode merge: the newest updated_ts wins).
WITH variants AS (
    SELECT
        record_key AS source_record_key,
        json_extract_string(raw, '$.legacyResourceId') AS shopify_product_id,
        json_extract_string(raw, '$.title') AS title,
        json_extract_string(raw, '$.productType') AS category,
        -- Attributes the shop has no field for travel as "name:value" tags.
        TRY_CAST(json_extract(raw, '$.tags') AS VARCHAR[]) AS tags,
        upper(json_extract_string(raw, '$.status')) AS status,
        TRY_CAST(json_extract_string(raw, '$.createdAt') AS TIMESTAMPTZ) AS created_ts,
        TRY_CAST(json_extract_string(raw, '$.updatedAt') AS TIMESTAMPTZ) AS updated_ts,
        -- A product without a readable variant still makes a row (NULL variant), which not_null quarantines.
        unnest(coalesce(NULLIF(TRY_CAST(json_extract(raw, '$.variants.nodes') AS VARCHAR[]), []), [NULL])) AS variant
    FROM @newest(bronze.shopify_products)
)
SELECT
    json_extract_string(variant, '$.sku') AS product_key,
    json_extract_string(variant, '$.sku') AS sku,
    shopify_product_id,
    coalesce(
        json_extract_string(variant, '$.legacyResourceId'),
        regexp_extract(json_extract_string(variant, '$.id'), '([0-9]+)$', 1)
    ) AS shopify_variant_id,
    regexp_extract(json_extract_string(variant, '$.inventoryItem.id'), '([0-9]+)$', 1) AS inventory_item_id,
    title,
    category,
    regexp_replace(list_filter(tags, t -> starts_with(t, 'era:'))[1], '^era:', '') AS era,
    regexp_replace(list_filter(tags, t -> starts_with(t, 'material:'))[1], '^material:', '') AS material,
    regexp_replace(list_filter(tags, t -> starts_with(t, 'condition:'))[1], '^condition:', '') AS condition,
    TRY_CAST(json_extract_string(variant, '$.price') AS DECIMAL(18, 2)) AS price,
    -- Variant prices are in the shop's currency, which the shop query reports as EUR.
    'EUR' AS currency,
    status,
    created_ts,
    updated_ts,
    source_record_key
FROM variants
