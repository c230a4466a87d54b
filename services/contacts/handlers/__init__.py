"""The contacts use cases, one module per concern: ``customers`` (what every handler shares;
registering a customer and any other one-customer command: load, decide, append in one
transaction), ``merges``, ``personal_data`` (export and erasure), ``history``,
``custom_fields``, ``importer`` (a CSV file's rows brought in without losing or doubling
anyone; the file in ``import_file``, a row as a command in ``import_rows``) and
``import_jobs`` (an import submitted, run in the background, polled)."""
