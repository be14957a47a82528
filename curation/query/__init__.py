"""The query layer: FilterSpec and its URL codec, CatalogQuery over the catalog, the check results, stats."""
