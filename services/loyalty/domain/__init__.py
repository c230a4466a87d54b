"""The loyalty domain, pure: ``ledger`` (a customer's PointsLedger as a fold of its
events), ``rules`` (a tenant's programme over time and its arithmetic), ``decisions``
(``decide(command, ledger, rules, now) -> events``) and ``views`` (what a caller sees)."""
