"""The report verifier: the inspector never reads a number the tools did not produce.

A report must be exactly what the seed's rules render from the observations (every number, the verdict,
the wording). A report that disagrees is replaced by the rule-based one and the turn is flagged, with the
reason written to the audit log.
"""

import re
from dataclasses import dataclass

from agent.reports import Check, Observation, render

_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class Verdict:
    """What the inspector reads, whether it is the model's own words, and why not if not."""

    report: str
    model_report: str
    replaced: bool
    reason: str | None = None


def verify(model_report: str, check: Check, work_order: Observation, detection: Observation | None) -> Verdict:
    expected = render(check, work_order, detection)
    if model_report.strip() == expected:
        return Verdict(expected, model_report, replaced=False)
    said, true = _NUMBER.findall(model_report), _NUMBER.findall(expected)
    if said != true:
        reason = f"numbers {said} disagree with the observations' {true}"
    elif _NUMBER.split(model_report)[-1].strip() != _NUMBER.split(expected)[-1].strip():
        reason = f"verdict {_NUMBER.split(model_report)[-1].strip()!r} disagrees with the rule's"
    else:
        reason = "wording differs from the report template"
    return Verdict(expected, model_report, replaced=True, reason=reason)
