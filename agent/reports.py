"""The inspector's report: which of the seed's outcomes the observations show, rendered from `prompts/`.

This is the rule the language model is trained to follow and the rule the report verifier checks it
against, so training data and verification can never disagree.
"""

import re
from collections import defaultdict
from functools import cache
from string import Formatter
from typing import Any, Literal

from prompts import load

Check = Literal["人数检测", "安全检查", "设备检查"]
CHECKS: tuple[Check, ...] = ("人数检测", "安全检查", "设备检查")
# The detection tool that answers each check.
DETECTOR_FOR: dict[Check, str] = {
    "人数检测": "count_people",
    "安全检查": "check_helmets",
    "设备检查": "check_equipment",
}

Observation = dict[str, Any]


def outcome(check: Check, work_order: Observation, detection: Observation) -> str:
    """The id of the outcome (a key of `[outcomes]` in prompts/reports.toml) the observations show."""
    persons = detection["persons"]
    if check == "人数检测":
        expected = work_order["expected_workers"]
        if persons == expected:
            return "people_normal"
        if persons < expected:
            return "people_absent"
        return "people_excess" if expected > 0 else "people_no_order"
    if persons == 0:
        return "helmets_empty" if check == "安全检查" else "equipment_empty"
    if check == "安全检查":
        if detection["without_helmet"] > 0:
            return "helmets_some" if detection["with_helmet"] > 0 else "helmets_none"
        return "helmets_unjudged" if detection.get("unknown", 0) > 0 else "helmets_all"
    without = detection["without_equipment"]
    if without == 0:
        return "equipment_all"
    return "equipment_some" if without < persons else "equipment_none"


def error_of(observation: Observation) -> str | None:
    """The error message of a tool observation, or None if the tool succeeded."""
    error = observation.get("error")
    return str(error) if error is not None else None


def render(check: Check, work_order: Observation, detection: Observation | None) -> str:
    """The report for a check; a failed tool's error is reported instead of numbers.

    `detection` is None only when the work-order lookup failed and no detector ran.
    """
    templates = load("reports")
    for observation in (work_order, detection or {}):
        error = error_of(observation)
        if error is not None:
            return templates["failed"].format(check=check, error=error)
    if detection is None:
        raise ValueError("a successful work-order lookup needs a detection observation to report on")
    fields = {"expected": work_order.get("expected_workers"), **detection}
    return templates["outcomes"][outcome(check, work_order, detection)].format(**fields)


def report_outcome(report: str) -> str | None:
    """Which outcome's template `report` is written in (`failed` for a failed check's report), or None.

    Outcomes that share a template are named together (`helmets_some/helmets_none`): their text is the same.
    """
    matched = _match(report)
    return matched[0] if matched else None


def report_numbers(report: str) -> dict[str, int]:
    """The numbers of a report written in an outcome's template, by field (`expected`, `persons`, ...); else {}."""
    matched = _match(report)
    if matched is None or matched[0] == "failed":
        return {}
    return {field: int(value) for field, value in matched[1].groupdict().items()}


def _match(report: str) -> tuple[str, re.Match[str]] | None:
    """The outcome (as `report_outcome` names it) whose template `report` is written in, with the match."""
    for name, pattern in _report_patterns():
        if found := pattern.fullmatch(report.strip()):
            return name, found
    return None


@cache
def _report_patterns() -> list[tuple[str, re.Pattern[str]]]:
    templates = load("reports")
    names_of: dict[str, list[str]] = defaultdict(list)
    for name, template in templates["outcomes"].items():
        names_of[template].append(name)
    patterns = [("/".join(names), _pattern(template, r"\d+")) for template, names in names_of.items()]
    return [*patterns, ("failed", _pattern(templates["failed"], ".+"))]


def _pattern(template: str, field: str) -> re.Pattern[str]:
    """`template` as a regular expression, each of its fields a group of its name matching `field`."""
    parts = Formatter().parse(template)
    return re.compile("".join(re.escape(text) + (f"(?P<{name}>{field})" if name else "") for text, name, _, _ in parts))
