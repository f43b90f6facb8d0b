"""Dates as an inspector says them, and the day each stands for relative to a dialogue's "today".

Only the forms the tools accept are said: 今天 / 昨天 / 前天 / 5月3日 / 5月3号 / 2024-05-03 / 2024年5月3日.
A written date lies within the two months before today, so a month-day without a year means that day.
"""

import calendar
import random
from dataclasses import dataclass
from datetime import date, timedelta

RELATIVE = {"今天": 0, "昨天": 1, "前天": 2}
WRITTEN = ("{m}月{d}日", "{m}月{d}号", "{y}-{m:02d}-{d:02d}", "{y}年{m}月{d}日")
FIRST_TODAY = date(2024, 1, 1)
TODAYS = 731  # reference days run over 2024 and 2025
LOOKBACK_DAYS = 60


@dataclass(frozen=True)
class SaidDate:
    text: str
    day: date | None  # None: no such calendar day (5月32日), which the tool answers with bad_date


def draw_today(rng: random.Random) -> date:
    return FIRST_TODAY + timedelta(days=rng.randrange(TODAYS))


def say(rng: random.Random, today: date) -> SaidDate:
    """A real date in one of the seven forms, each form equally likely."""
    form = rng.randrange(len(RELATIVE) + len(WRITTEN))
    if form < len(RELATIVE):
        word = list(RELATIVE)[form]
        return SaidDate(word, today - timedelta(days=RELATIVE[word]))
    day = today - timedelta(days=rng.randrange(LOOKBACK_DAYS))
    return SaidDate(WRITTEN[form - len(RELATIVE)].format(y=day.year, m=day.month, d=day.day), day)


def say_impossible(rng: random.Random, today: date) -> SaidDate:
    """A written date past the end of its month, such as 2月30日 or 2024-04-31."""
    month = rng.randint(1, 12)
    day = rng.randint(calendar.monthrange(today.year, month)[1] + 1, 32)
    return SaidDate(rng.choice(WRITTEN).format(y=today.year, m=month, d=day), None)
