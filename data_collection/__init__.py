"""GitHub repository collection: token-pooled client, cap-splitting search, enrichment, dataset writer."""
