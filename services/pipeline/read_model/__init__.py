"""The pipeline's own query tables, written in the same transaction as the events.

One module per concern, each with its tables and the queries that read them:
``order_list`` (orders, external ids, purchase figures), ``known_customers`` (the
projection fed by ``crm.contacts.events``), ``lead_list``, ``task_list`` (tasks and
contracts) and ``funnel`` (deals and their stays in stages). All share ``metadata``.
"""

from __future__ import annotations

from sqlalchemy import (
    MetaData,
)

metadata = MetaData()
