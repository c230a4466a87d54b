"""The contacts use cases, one module per concern: ``customers`` (load, decide, append in one
transaction; reactions to other services), ``importer`` (a CSV file's rows brought in
without losing or doubling anyone) and ``import_jobs`` (an import submitted, run in the
background, polled)."""
