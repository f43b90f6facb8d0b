"""The shipped demo database: what it holds, that its script rebuilds it, and that the tools answer from it."""

import csv
import datetime as dt
import importlib.util
from pathlib import Path

import pytest

from tools import db
from tools.catalog import build_registry
from tools.context import DEMO_DATABASE, ToolContext

DEMO = DEMO_DATABASE.parent


@pytest.fixture(scope="module")
def builder():
    spec = importlib.util.spec_from_file_location("build_demo", Path(__file__).parents[1] / "scripts" / "build_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_csv(name):
    with (DEMO / name).open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def test_the_demo_holds_a_month_of_orders_for_at_least_30_sites():
    with db.reading(DEMO_DATABASE) as connection:
        sites = db.sites(connection)
        first, last, orders = connection.execute("SELECT min(date), max(date), count(*) FROM work_orders").fetchone()
        paths = [path for (path,) in connection.execute("SELECT path FROM images")]
        roots = db.image_roots(connection, DEMO_DATABASE)
    assert len(sites) >= 30 and orders > 30 * 15
    assert (first, last) == ("2024-05-01", "2024-05-31")
    names = [site.name for site in sites]
    assert "济南工地" in names
    assert any(n.endswith("kV变电站") for n in names) and any(n.endswith("号塔段") for n in names)
    assert any(site.aliases for site in sites)
    assert paths and all((DEMO / path).is_file() and (DEMO / path).resolve().is_relative_to(roots[0]) for path in paths)


def test_the_demo_is_what_its_script_builds(builder):
    site_rows, captures, order_rows = builder.plan(2024)
    assert read_csv("sites.csv") == site_rows
    assert read_csv("work_orders.csv") == order_rows
    manifest = read_csv("images.csv")
    shots = [(name, when, variant) for name, taken in captures.items() for when, variant in taken]
    assert [(row["site"], row["captured_at"]) for row in manifest] == [(n, str(w)) for n, w, _ in shots]
    derived = {variant: builder.derive(variant) for variant in builder.VARIANTS}
    for row, (_, _, variant) in zip(manifest, shots, strict=True):
        assert (DEMO / row["path"]).read_bytes() == derived[variant]


def test_the_tools_answer_from_the_demo(builder):
    _, captures, _ = builder.plan(2024)
    site, ((when, variant), _) = next((name, shots) for name, shots in captures.items() if shots[0][1].persons)
    registry = build_registry(ToolContext(today=lambda: dt.date(2024, 5, 31)))
    observation = registry.call("count_people", {"site": site, "date": when.date().isoformat()})
    assert observation == {"image": f"images/{site}/{when:%Y%m%d_%H%M%S}.jpg", "persons": variant.persons}
    order = registry.call("query_work_order", {"site": site, "check": "人数检测", "date": "5月31日"})
    assert order["site"] == site and order["date"] == "2024-05-31"
