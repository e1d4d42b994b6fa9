"""What producers and workers both import: settings, models, queries, the producer API."""
