"""Notifications: per-tenant webhook (and e-mail) subscriptions to platform events,
delivered as signed CloudEvents, retried, logged and disabled when a receiver keeps
failing (docs/decisions/0050)."""
