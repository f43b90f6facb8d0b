"""Dates as inspectors say them: 今天, 昨天, 前天, 5月3日, 5月3号, 2024-05-03, 2024年5月3日."""

import datetime as dt
import re
import unicodedata

from tools.observations import Failure

_DAYS_AGO = {"今天": 0, "今日": 0, "昨天": 1, "昨日": 1, "前天": 2}
_FULL = re.compile(r"(\d{4})(?:-|/|年)(\d{1,2})(?:-|/|月)(\d{1,2})[日号]?")
_MONTH_DAY = re.compile(r"(\d{1,2})月(\d{1,2})[日号]?")
# A month-day names the most recent such date; 2月29日 may lie up to 8 years back.
_YEARS_BACK = 8


def resolve_date(text: str | None, today: dt.date) -> dt.date:
    """The calendar day `text` names, relative to `today`; None means today. Raises Failure(bad_date)."""
    if text is None:
        return today
    spoken = "".join(unicodedata.normalize("NFKC", text).split())
    if spoken in _DAYS_AGO:
        return today - dt.timedelta(days=_DAYS_AGO[spoken])
    if full := _FULL.fullmatch(spoken):
        year, month, day = map(int, full.groups())
        return _day(year, month, day, text)
    if month_day := _MONTH_DAY.fullmatch(spoken):
        month, day = map(int, month_day.groups())
        for year in range(today.year, today.year - _YEARS_BACK, -1):
            try:
                candidate = dt.date(year, month, day)
            except ValueError:
                continue
            if candidate <= today:
                return candidate
    raise Failure("bad_date", date=text)


def _day(year: int, month: int, day: int, text: str) -> dt.date:
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise Failure("bad_date", date=text) from None
