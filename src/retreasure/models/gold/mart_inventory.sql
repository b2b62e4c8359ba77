-- Stock per location and day, valued at cost: what a buyer reads to see how much money sits on the shelves, how
-- fast it turns and how old it is. The stores' tills give every movement. The warehouse gives only Shopify's
-- current level, so its history is rebuilt backwards from that level with the sales (fct_order_lines) and the
-- restocks of refunded lines (fct_refunds): bought in = level now + units sold - units restocked, on the day
-- the item was created on Shopify.
WITH levels AS (
    SELECT location_key, location_name, sku, on_hand_end AS on_hand_now
    FROM gold.fct_inventory_daily
    WHERE source = 'shopify'
),
online AS (
    -- Online sales leave the warehouse; a refund of a named line puts its units back (every return is restocked).
    SELECT sku, order_date AS day, quantity AS units_sold, 0 AS units_restocked
    FROM gold.fct_order_lines
    WHERE channel <> 'pos'
    UNION ALL
    SELECT l.sku, r.refund_date, 0, r.quantity
    FROM gold.fct_refunds r
    JOIN gold.fct_order_lines l ON l.line_key = r.line_key
    WHERE r.channel <> 'pos'
),
warehouse_acquired AS (
    SELECT
        v.location_key,
        v.location_name,
        v.sku,
        CAST(p.created_ts AT TIME ZONE 'UTC' AS DATE) AS day,
        v.on_hand_now + coalesce(sum(o.units_sold - o.units_restocked), 0) AS units_acquired
    FROM levels v
    JOIN silver.stg_shopify_products p ON p.sku = v.sku
    LEFT JOIN online o ON o.sku = v.sku
    GROUP BY v.location_key, v.location_name, v.sku, p.created_ts, v.on_hand_now
),
warehouse AS (
    SELECT location_key, location_name, sku, day, sum(units_acquired) AS units_acquired,
        sum(units_sold) AS units_sold, sum(units_restocked) AS units_restocked
    FROM (
        SELECT location_key, location_name, sku, day, units_acquired, 0 AS units_sold, 0 AS units_restocked
        FROM warehouse_acquired
        UNION ALL
        SELECT v.location_key, v.location_name, o.sku, o.day, 0, o.units_sold, o.units_restocked
        FROM online o
        JOIN levels v ON v.sku = o.sku
    )
    GROUP BY ALL
),
moves AS (
    -- One row per location, SKU and day with movement, with the units on hand at the day's end.
    SELECT location_key, location_name, sku, day, units_acquired, units_sold, units_restocked, on_hand_end
    FROM gold.fct_inventory_daily
    WHERE source = 'pos'
    UNION ALL
    SELECT
        location_key, location_name, sku, day, units_acquired, units_sold, units_restocked,
        sum(units_acquired - units_sold + units_restocked) OVER (
            PARTITION BY location_key, sku ORDER BY day
        ) AS on_hand_end
    FROM warehouse
),
items AS (
    SELECT
        m.location_key,
        m.sku,
        min(m.day) FILTER (WHERE m.units_acquired > 0) AS acquired_date,
        -- A one-of-a-kind item is bought in as a single unit.
        sum(m.units_acquired) = 1 AS is_unique,
        any_value(c.unit_cost) AS unit_cost
    FROM moves m
    LEFT JOIN silver.product_costs c ON c.sku = m.sku
    GROUP BY m.location_key, m.sku
),
bounds AS (
    -- From the first day anything sold to the last day anything moved, sold or was refunded.
    SELECT
        (SELECT min(order_date) FROM gold.fct_order_lines) AS first_day,
        greatest(
            (SELECT max(day) FROM gold.fct_inventory_daily),
            (SELECT max(order_date) FROM gold.fct_order_lines),
            (SELECT max(refund_date) FROM gold.fct_refunds)
        ) AS last_day
),
calendar AS (
    SELECT CAST(d AS DATE) AS day FROM bounds CROSS JOIN unnest(generate_series(first_day, last_day, INTERVAL 1 DAY)) AS s (d)
),
locations AS (
    SELECT DISTINCT location_key, location_name FROM moves
),
held AS (
    -- Each movement day's closing stock holds until the SKU's next movement day (the last, to the calendar's end):
    -- one row per stretch of days, not per day held (a year of one-of-a-kind items on the shelf is millions).
    SELECT
        s.location_key,
        greatest(s.day, b.first_day) AS first_held,
        least(coalesce(s.next_day - 1, b.last_day), b.last_day) AS last_held,
        s.on_hand_end AS on_hand,
        s.on_hand_end * i.unit_cost AS value_at_cost,
        i.acquired_date,
        i.is_unique
    FROM (
        SELECT *, lead(day) OVER (PARTITION BY location_key, sku ORDER BY day) AS next_day FROM moves
    ) s
    JOIN items i ON i.location_key = s.location_key AND i.sku = s.sku
    CROSS JOIN bounds b
    WHERE s.on_hand_end <> 0
),
ages AS (
    -- The age brackets of units on hand, in days since bought in (the first includes days before it).
    SELECT * FROM (VALUES (1, NULL, 30), (2, 31, 90), (3, 91, 180), (4, 181, NULL)) AS a (bracket, youngest, oldest)
),
stretches AS (
    -- What a stretch adds to its location's figures on each of its days: the whole stretch, then the part of it
    -- in each age bracket.
    SELECT
        location_key, first_held, last_held, 0 AS bracket, CAST(on_hand > 0 AS INTEGER) AS skus, on_hand,
        value_at_cost, CAST(value_at_cost IS NULL AS INTEGER) AS without_cost,
        CASE WHEN is_unique THEN on_hand ELSE 0 END AS unique_units
    FROM held
    UNION ALL
    SELECT
        h.location_key,
        CASE WHEN a.youngest IS NULL THEN h.first_held ELSE greatest(h.first_held, h.acquired_date + a.youngest) END,
        CASE WHEN a.oldest IS NULL THEN h.last_held ELSE least(h.last_held, h.acquired_date + a.oldest) END,
        a.bracket, 0, h.on_hand, NULL, 0, 0
    FROM held h
    CROSS JOIN ages a
    WHERE h.acquired_date IS NOT NULL
),
changes AS (
    -- Each stretch counted in on its first day and out the day after its last; summed per location and day.
    SELECT
        location_key,
        day,
        sum(skus) AS skus,
        sum(on_hand) FILTER (WHERE bracket = 0) AS units,
        sum(value_at_cost) AS value,
        sum(without_cost) AS without_cost,
        sum(on_hand) FILTER (WHERE bracket = 1) AS aged_0_30,
        sum(on_hand) FILTER (WHERE bracket = 2) AS aged_31_90,
        sum(on_hand) FILTER (WHERE bracket = 3) AS aged_91_180,
        sum(on_hand) FILTER (WHERE bracket = 4) AS aged_over_180,
        sum(unique_units) AS unique_units
    FROM (
        SELECT location_key, first_held AS day, bracket, skus, on_hand, value_at_cost, without_cost, unique_units
        FROM stretches
        WHERE first_held <= last_held
        UNION ALL
        SELECT location_key, last_held + 1, bracket, -skus, -on_hand, -value_at_cost, -without_cost, -unique_units
        FROM stretches
        WHERE first_held <= last_held
    )
    GROUP BY ALL
),
stock AS (
    -- A location's figures on a day: every change up to that day.
    SELECT
        c.day,
        l.location_key,
        sum(x.skus) OVER w AS skus_on_hand,
        sum(x.units) OVER w AS units_on_hand,
        sum(x.value) OVER w AS value_on_hand,
        sum(x.without_cost) OVER w AS skus_without_cost,
        sum(x.aged_0_30) OVER w AS units_aged_0_30,
        sum(x.aged_31_90) OVER w AS units_aged_31_90,
        sum(x.aged_91_180) OVER w AS units_aged_91_180,
        sum(x.aged_over_180) OVER w AS units_aged_over_180,
        sum(x.unique_units) OVER w AS unique_items_on_hand
    FROM calendar c
    CROSS JOIN locations l
    LEFT JOIN changes x ON x.day = c.day AND x.location_key = l.location_key
    WINDOW w AS (PARTITION BY l.location_key ORDER BY c.day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
flows AS (
    SELECT
        m.day,
        m.location_key,
        sum(m.units_acquired) AS units_acquired,
        sum(m.units_sold) AS units_sold,
        sum(m.units_restocked) AS units_restocked,
        -- Cost leaves with the goods sold and comes back with the goods restocked.
        sum((m.units_sold - m.units_restocked) * i.unit_cost) AS cost_of_goods,
        sum(m.units_sold - m.units_restocked) FILTER (WHERE i.is_unique) AS unique_items_sold
    FROM moves m
    JOIN items i ON i.location_key = m.location_key AND i.sku = m.sku
    GROUP BY ALL
),
daily AS (
    SELECT
        c.day,
        l.location_key,
        l.location_name,
        CAST(coalesce(s.skus_on_hand, 0) AS INTEGER) AS skus_on_hand,
        CAST(coalesce(s.units_on_hand, 0) AS BIGINT) AS units_on_hand,
        coalesce(s.value_on_hand, 0) AS value_on_hand,
        CAST(coalesce(s.skus_without_cost, 0) AS INTEGER) AS skus_without_cost,
        CAST(coalesce(f.units_acquired, 0) AS BIGINT) AS units_acquired,
        CAST(coalesce(f.units_sold, 0) AS BIGINT) AS units_sold,
        CAST(coalesce(f.units_restocked, 0) AS BIGINT) AS units_restocked,
        coalesce(f.cost_of_goods, 0) AS cost_of_goods,
        CAST(coalesce(s.units_aged_0_30, 0) AS BIGINT) AS units_aged_0_30,
        CAST(coalesce(s.units_aged_31_90, 0) AS BIGINT) AS units_aged_31_90,
        CAST(coalesce(s.units_aged_91_180, 0) AS BIGINT) AS units_aged_91_180,
        CAST(coalesce(s.units_aged_over_180, 0) AS BIGINT) AS units_aged_over_180,
        CAST(coalesce(s.unique_items_on_hand, 0) AS BIGINT) AS unique_items_on_hand,
        CAST(coalesce(f.unique_items_sold, 0) AS BIGINT) AS unique_items_sold
    FROM calendar c
    CROSS JOIN locations l
    LEFT JOIN stock s ON s.day = c.day AND s.location_key = l.location_key
    LEFT JOIN flows f ON f.day = c.day AND f.location_key = l.location_key
),
windowed AS (
    -- The 30 days ending on the row's day (fewer at the start of the history); every day has a row.
    SELECT
        *,
        count(*) OVER w AS window_days,
        sum(cost_of_goods) OVER w AS cost_of_goods_30d,
        sum(value_on_hand) OVER w AS value_sum_30d,
        sum(unique_items_sold) OVER w AS unique_items_sold_30d
    FROM daily
    WINDOW w AS (PARTITION BY location_key ORDER BY day ROWS BETWEEN 29 PRECEDING AND CURRENT ROW)
)
SELECT
    day,
    location_key,
    location_name,
    skus_on_hand,
    units_on_hand,
    value_on_hand,
    skus_without_cost,
    units_acquired,
    units_sold,
    units_restocked,
    cost_of_goods,
    CAST(cost_of_goods_30d AS DECIMAL(18, 2)) AS cost_of_goods_30d,
    -- Exact, in integers (the divide macro): an average of doubles rounds an exact half cent either way, by engine.
    CAST(@divide(value_sum_30d, window_days, 2) AS DECIMAL(18, 2)) AS avg_value_30d,
    -- cost / (value_sum / days), the unrounded average, as cost * days / value_sum.
    CAST(@divide(cost_of_goods_30d * window_days, value_sum_30d, 4) AS DECIMAL(12, 4)) AS inventory_turnover_30d,
    CASE WHEN cost_of_goods_30d > 0 THEN
        CAST(round(value_on_hand * window_days / cost_of_goods_30d, 1) AS DECIMAL(12, 1))
    END AS days_on_hand,
    units_aged_0_30,
    units_aged_31_90,
    units_aged_91_180,
    units_aged_over_180,
    unique_items_on_hand,
    unique_items_sold,
    CAST(unique_items_sold_30d AS BIGINT) AS unique_items_sold_30d,
    CAST(
        round(unique_items_sold_30d / nullif(unique_items_sold_30d + unique_items_on_hand, 0), 4) AS DECIMAL(7, 4)
    ) AS unique_sell_through_30d
FROM windowed
