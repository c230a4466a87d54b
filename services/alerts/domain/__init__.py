"""Churn risk as a pure function of a customer's facts, the tenant's rules and a time."""
