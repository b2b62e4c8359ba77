-- Versioned business configuration: the tax rate of each destination jurisdiction the business sells to (VAT
-- by country, sales tax by US state). Marketplaces send tax amounts or totals, never rates, so the models that
-- split a tax-inclusive amount or a receipt's tax into lines read the rate here. A jurisdiction missing here
-- leaves those lines' tax_rate empty, which their contracts flag.
SELECT country, region, CAST(rate AS DECIMAL(18, 6)) AS rate
FROM (
    VALUES
        ('DE', '', 0.19), ('FR', '', 0.20), ('NL', '', 0.21), ('IT', '', 0.22), ('GB', '', 0.20),
        ('SE', '', 0.25), ('JP', '', 0.10), ('US', 'NY', 0.08875), ('US', 'IL', 0.0625),
        ('US', 'CA', 0.0725), ('US', 'WA', 0.065), ('US', 'TX', 0.0625)
) AS t (country, region, rate)
