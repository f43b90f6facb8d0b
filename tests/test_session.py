"""Session set-up: which day "今天" is, and which registered sites a request names."""

import datetime as dt

from agent.session import SessionOptions, SiteMentions, registered_sites, site_mentions, today_for
from tools import db


def test_today_comes_from_the_option_then_the_snapshot_then_the_calendar(tmp_path):
    assert today_for(SessionOptions()) == (dt.date(2024, 5, 31), "snapshot date of demo.sqlite")
    assert today_for(SessionOptions(today=dt.date(2024, 5, 3)))[0] == dt.date(2024, 5, 3)
    live = tmp_path / "live.sqlite"
    db.init(live)
    assert today_for(SessionOptions(database=live)) == (dt.date.today(), "calendar")


def test_site_mentions_keep_the_longest_names():
    mentions = SiteMentions({"济南": "济南工地", "济南工地": "济南工地", "历城": "历城站", "历城220kV变电站": "历城站"})
    assert mentions("查查在济南工地人数嘛") == ["济南工地"]
    assert mentions("历城220kV变电站安全帽") == ["历城站"]
    assert mentions("济南和历城的人数") == ["历城站", "济南工地"]
    assert mentions("随便说说") == []


def test_demo_database_mentions():
    mentions = site_mentions(registered_sites(SessionOptions().database))
    assert mentions("查查在济南工地人数嘛") == ["济南工地"]
    assert len(mentions("对比青岛工地和烟台工地的出勤")) == 2
