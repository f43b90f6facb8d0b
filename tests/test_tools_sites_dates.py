import datetime as dt

import pytest

from prompts import load
from tools.dates import resolve_date
from tools.observations import Failure
from tools.sites import Site, normalise, resolve_site, unambiguous_names

TODAY = dt.date(2024, 5, 10)
SITES = [
    Site(1, "济南工地", "济南市", ("济南",)),
    Site(2, "济南历下工地", "济南市历下区", ()),
    Site(3, "历城220kV变电站", "济南市历城区", ("历城站",)),
    Site(4, "济青线12号塔段", "淄博市", ()),
    Site(5, "青岛工地", "青岛市", ()),
    Site(6, "青岛港110kV变电站", "青岛市", ()),
]


@pytest.mark.parametrize(
    ("spoken", "day"),
    [
        (None, TODAY),
        ("今天", TODAY),
        ("昨天", dt.date(2024, 5, 9)),
        ("前天", dt.date(2024, 5, 8)),
        ("5月3日", dt.date(2024, 5, 3)),
        ("5月3号", dt.date(2024, 5, 3)),
        ("５月３日", dt.date(2024, 5, 3)),
        ("5月10日", TODAY),
        ("5月11日", dt.date(2023, 5, 11)),
        ("12月31日", dt.date(2023, 12, 31)),
        ("2月29日", dt.date(2024, 2, 29)),
        ("2024-05-03", dt.date(2024, 5, 3)),
        ("2025-01-02", dt.date(2025, 1, 2)),
        ("2024年5月3日", dt.date(2024, 5, 3)),
        (" 2024 年 5 月 3 号 ", dt.date(2024, 5, 3)),
    ],
)
def test_dates(spoken, day):
    assert resolve_date(spoken, TODAY) == day


def test_a_month_day_is_the_most_recent_one_not_in_the_future():
    assert resolve_date("2月29日", dt.date(2025, 3, 1)) == dt.date(2024, 2, 29)
    assert resolve_date("1月1日", dt.date(2024, 1, 1)) == dt.date(2024, 1, 1)


@pytest.mark.parametrize("spoken", ["明天", "5月32日", "2024-02-30", "13月1日", "下周一", "", "2024-5"])
def test_bad_dates(spoken):
    with pytest.raises(Failure) as caught:
        resolve_date(spoken, TODAY)
    assert caught.value.observation() == {
        "error": load("observations")["errors"]["bad_date"].format(date=spoken),
        "hint": load("observations")["hints"]["bad_date"],
    }


def test_normalise():
    assert normalise(" 济南 工地") == "济南"
    assert normalise("历城２２０ＫＶ变电站") == "历城220kv变电"
    assert normalise("工地") == "工地"


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("济南工地", "济南工地"),  # exact
        ("济南", "济南工地"),  # alias, although 济南历下工地 also contains it
        ("历城站", "历城220kV变电站"),  # alias
        ("济南历下", "济南历下工地"),  # normalised
        ("青岛 工地", "青岛工地"),  # normalised
        ("青岛", "青岛工地"),  # normalised, although 青岛港110kV变电站 also starts with it
        ("历城２２０ｋｖ变电站", "历城220kV变电站"),  # full-width, case
        ("历城变电站", "历城220kV变电站"),  # fuzzy: characters in order
        ("济青线12号塔", "济青线12号塔段"),  # fuzzy
        ("青岛港110kV变店站", "青岛港110kV变电站"),  # fuzzy: a typo
    ],
)
def test_site_resolution(query, name):
    assert resolve_site(query, SITES).name == name


def test_an_ambiguous_site_lists_its_candidates():
    with pytest.raises(Failure) as caught:
        resolve_site("变电站", SITES)
    assert caught.value.key == "ambiguous_site"
    assert caught.value.observation()["error"] == "站点“变电站”不唯一, 可能是: 历城220kV变电站、青岛港110kV变电站"


def test_an_alias_shared_after_normalising_is_ambiguous():
    sites = [Site(1, "济南工地", "", ()), Site(2, "济南站", "", ())]
    with pytest.raises(Failure, match="济南工地、济南站"):
        resolve_site("济南", sites)


@pytest.mark.parametrize("query", ["北京工地", "上海", "", "   "])
def test_an_unknown_site_says_so(query):
    with pytest.raises(Failure) as caught:
        resolve_site(query, SITES)
    assert caught.value.observation()["error"] == f"未找到站点“{query}”"


def test_each_unambiguous_name_resolves_to_its_one_site():
    names = unambiguous_names(SITES)
    assert {"济南", "济南历下", "历城", "青岛", "青岛港110kv变电"} <= names
    for name in names:
        assert name in map(normalise, resolve_site(name, SITES).names)
    shared = [Site(1, "济南工地", "", ()), Site(2, "济南站", "", ())]
    assert unambiguous_names(shared) == frozenset(), "济南 is both once normalised"
