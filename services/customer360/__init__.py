"""Customer 360: a projector that folds every service's events into one view per customer."""
