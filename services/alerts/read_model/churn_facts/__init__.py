"""The alerts service's own tables: per-customer churn facts, the customers, the rules.

``churn_facts``: one row per event the churn rules read (a fact, keyed by the
event's id), under the customer it is about now (a merged duplicate's facts move to
the survivor). ``churn_customers``: every customer of the tenant (ranked even with no
fact), its current owner, and the level last assessed, so a rise to high is raised
once. ``churn_rules``: the tenant's rules in force and their stream's version.
The alerts users work are in ``alert_list``.

By concern: ``tables``, the customer ``directory`` (known, owned, merged),
``kept_facts``, ``assessments`` (decision 0093), the ``ranking`` read from them, and
the tenant's ``rules``. Callers use this package's names.
"""

from services.alerts.read_model.churn_facts.assessments import (
    Assessment,
    assessed,
    due_for_review,
    keep_assessments,
    review_everyone,
)
from services.alerts.read_model.churn_facts.directory import (
    customer,
    know_customer,
    know_customers,
    lock_customers,
    merge,
    register_customers,
    set_owner,
    survivor_of,
    survivors_of,
    tenants,
)
from services.alerts.read_model.churn_facts.kept_facts import (
    STREAM_ROWS,
    add_fact,
    add_facts,
    facts_by_customer,
    facts_of,
    order_histories,
    purchase_histories,
)
from services.alerts.read_model.churn_facts.ranking import (
    RankOrder,
    RankPosition,
    customers_by_level,
    ranked_customers,
    ranking_page,
    tenant_size,
)
from services.alerts.read_model.churn_facts.rules import rules_of, save_rules
from services.alerts.read_model.churn_facts.tables import (
    NEVER_BOUGHT,
    customers,
    facts,
    lapse_of,
    lapse_rank,
    metadata,
    rules_table,
)

__all__ = [
    "NEVER_BOUGHT",
    "STREAM_ROWS",
    "Assessment",
    "RankOrder",
    "RankPosition",
    "add_fact",
    "add_facts",
    "assessed",
    "customer",
    "customers",
    "customers_by_level",
    "due_for_review",
    "facts",
    "facts_by_customer",
    "facts_of",
    "keep_assessments",
    "know_customer",
    "know_customers",
    "lapse_of",
    "lapse_rank",
    "lock_customers",
    "merge",
    "metadata",
    "order_histories",
    "purchase_histories",
    "ranked_customers",
    "ranking_page",
    "register_customers",
    "review_everyone",
    "rules_of",
    "rules_table",
    "save_rules",
    "set_owner",
    "survivor_of",
    "survivors_of",
    "tenant_size",
    "tenants",
]
