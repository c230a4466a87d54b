"""The tickets domain, pure: the Ticket aggregate, business calendars and SLA clocks."""
