-- The sales channels, as reference data: what kind of channel each is and who owes the tax on its orders.
-- Marketplace-facilitator rules make eBay and Etsy collect and remit tax for buyers in some countries only
-- (retreasure_sim.world.MARKETPLACE_REMITS); everywhere else the seller files it, as on its own shop and tills.
SELECT channel, name, kind, default_tax_party, marketplace_remits_in
FROM (
    VALUES
        ('shopify', 'Web shop (Shopify)', 'web_shop', 'seller', CAST([] AS VARCHAR[])),
        ('ebay', 'eBay', 'marketplace', 'seller', ['GB', 'US']),
        ('etsy', 'Etsy', 'marketplace', 'seller', ['GB', 'US']),
        ('pos', 'Stores (POS)', 'store', 'seller', CAST([] AS VARCHAR[]))
) AS c(channel, name, kind, default_tax_party, marketplace_remits_in)
