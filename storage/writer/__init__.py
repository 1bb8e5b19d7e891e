"""The one writer of the log (SPEC §11): the process gunicorn's master runs (`process`),
the workers' client of it (`client`), the frames between them (`wire`), and the group
commit both run (`group`, also the in-process writer when no writer process is set).

In: the rows of `storage.intake`'s events and points. Out: each request's outcome,
committed to `storage.log` before it is told."""
