"""The analytics read model: the projection's tables (one set per generation) with
the statements that write them, the queries that read them, and the service's own
tables for segments and settings."""
