"""The contacts service's own query tables, one module per concern: ``customer_list`` (the
customers as lookups, searches and duplicate checks answer them, written with the events)
and ``registration_routine`` (the PostgreSQL routine that registers a customer in one
round trip, installed with the migrations)."""
