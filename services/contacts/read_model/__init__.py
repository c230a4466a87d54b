"""The contacts service's own query tables, one module per concern: ``customer_list`` (the
tables, and the customers as lookups and duplicate checks answer them, written with the
events), ``customer_rows`` (a customer as its row keeps it), ``customer_search`` (the
list's search and filters), ``write_locks`` (the advisory locks that keep duplicate
detection race-free), ``planner`` (PostgreSQL's planner around bulk imports) and
``registration_routine`` (the PostgreSQL routine that registers a customer in one round
trip, installed with the migrations)."""
