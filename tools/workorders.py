"""`query_work_order`: what the work order of a site, day and check says."""

from agent.reports import Check
from tools import db
from tools.context import ToolContext
from tools.dates import resolve_date
from tools.observations import Observation
from tools.sites import resolve_site


def look_up(ctx: ToolContext, site: str, check: Check, date: str | None) -> Observation:
    """The order as an observation; no order that day means 0 expected workers, no leader, no equipment."""
    day = resolve_date(date, ctx.today())
    with db.reading(ctx.database) as connection:
        found = resolve_site(site, db.sites(connection))
        order = next((o for o in db.work_orders(connection, found, day) if o.check == check), None)
    return {
        "site": found.name,
        "date": day.isoformat(),
        "check": check,
        "expected_workers": order.expected_workers if order else 0,
        "leader": order.leader if order else None,
        "equipment": list(order.equipment) if order else [],
    }
