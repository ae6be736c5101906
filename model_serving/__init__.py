"""Model training (development_server), serving (production_server) and the contracts they share."""
