"""Storage layer: the event log, data points, the query engine, replay. No Falcon here."""
