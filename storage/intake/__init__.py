"""A body in, rows out: the event types of each layout (`layouts`), a request body made
events (`events`) or raw data points (`points`), a data point and Analytics Engine's limits
(`datapoint`), and the times of SPEC §7 (`timestamps`). Pure: no I/O, nothing of the rest of
the service."""
