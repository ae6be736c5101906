"""GitHub repository collection: token-pooled REST client, cap-splitting search, enrichment, dataset writer."""
