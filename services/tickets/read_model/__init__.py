"""The tickets service's own query tables, one module per concern: ``ticket_list`` (the
tickets as queues and searches answer them), ``known_customers`` (the projection fed by
``crm.contacts.events``) and ``service_stats`` (volumes, SLA, CSAT and NPS over a period)."""
