"""What the tools answer, in their exact shapes: work orders, detections drawn for a chosen outcome, errors.

Numbers are drawn per outcome so that every report outcome is common in the data: 0–60 people expected,
0–60 persons on the image.
"""

import random
from datetime import date
from typing import Any

from agent.reports import Check, Observation
from prompts import load as load_prompts
from training_data import load

MAX_PEOPLE = 60
NO_ORDER_SHARE = 0.15  # safety and equipment checks on a day without a work order
# Where each tool failure happens: the work-order lookup, or the detector.
QUERY_FAILURES = ("unknown_site", "ambiguous_site", "bad_date")
DETECTION_FAILURES = ("no_image", "image_unreadable")
EQUIPMENT_FAILURE = "no_equipment_class"  # check_equipment only
CANDIDATE_SUFFIXES = ("一期", "二期", "三期")


def error(kind: str, **fields: Any) -> Observation:
    """A tool's error observation, worded as in prompts/observations.toml."""
    texts = load_prompts("observations")
    return {"error": texts["errors"][kind].format(**fields), "hint": texts["hints"][kind]}


def query_failure(rng: random.Random, kind: str, *, site: str, date: str | None, canonical: str) -> Observation:
    """query_work_order's error for the site and date as heard; `canonical` is the site meant."""
    if kind == "unknown_site":
        return error(kind, site=site)
    if kind == "ambiguous_site":
        candidates = "、".join(canonical + suffix for suffix in rng.sample(CANDIDATE_SUFFIXES, 2))
        return error(kind, site=site, candidates=candidates)
    if kind == "bad_date":
        return error(kind, date=date)
    raise ValueError(f"{kind!r} is not a failure of the work-order lookup")


def detection_failure(rng: random.Random, kind: str, *, canonical: str, day: date) -> Observation:
    """A detector's error for a resolved site and day."""
    if kind == "no_image":
        return error(kind, site=canonical, date=day.isoformat())
    if kind == "image_unreadable":
        return error(kind, image=image_path(rng, canonical, day))
    if kind == EQUIPMENT_FAILURE:
        return error(kind)
    raise ValueError(f"{kind!r} is not a failure of a detector")


def work_order(rng: random.Random, site: str, day: date, check: Check, expected: int) -> Observation:
    """query_work_order's answer; a day without an order has 0 expected workers, no leader, no equipment."""
    if expected == 0:
        leader, equipment = None, []
    else:
        names = load("work_orders")
        leader = rng.choice(names["surnames"]) + "".join(rng.choices(names["given_names"], k=rng.randint(1, 2)))
        issued = set(rng.sample(names["equipment"], rng.randint(1, 3)))
        equipment = [item for item in names["equipment"] if item in issued]
    return {
        "site": site,
        "date": day.isoformat(),
        "check": check,
        "expected_workers": expected,
        "leader": leader,
        "equipment": equipment,
    }


def image_path(rng: random.Random, site: str, day: date) -> str:
    return f"images/{site}/{day.isoformat()}_{rng.randint(7, 18):02d}{rng.randint(0, 59):02d}.jpg"


def expected_workers(rng: random.Random) -> int:
    """The work order's head count where it does not decide the outcome."""
    return 0 if rng.random() < NO_ORDER_SHARE else rng.randint(1, MAX_PEOPLE)


def counts(rng: random.Random, outcome: str) -> tuple[int, dict[str, int]]:
    """Expected workers and the detector's numbers (in observation key order) that give `outcome`."""
    n = rng.randint
    match outcome:
        case "people_normal":
            expected = n(1, MAX_PEOPLE)
            return expected, {"persons": expected}
        case "people_absent":
            expected = n(1, MAX_PEOPLE)
            return expected, {"persons": n(0, expected - 1)}
        case "people_excess":
            expected = n(1, MAX_PEOPLE - 1)
            return expected, {"persons": n(expected + 1, MAX_PEOPLE)}
        case "people_no_order":
            return 0, {"persons": n(1, MAX_PEOPLE)}
        case "helmets_all":
            persons = n(1, MAX_PEOPLE)
            return expected_workers(rng), helmet_counts(persons, without=0, unknown=0)
        case "helmets_some":
            persons = n(2, MAX_PEOPLE)
            without = n(1, persons - 1)
            return expected_workers(rng), helmet_counts(persons, without=without, unknown=n(0, persons - 1 - without))
        case "helmets_none":
            persons = n(1, MAX_PEOPLE)
            without = n(1, persons)
            return expected_workers(rng), helmet_counts(persons, without=without, unknown=persons - without)
        case "helmets_unjudged":
            persons = n(1, MAX_PEOPLE)
            return expected_workers(rng), helmet_counts(persons, without=0, unknown=n(1, persons))
        case "helmets_empty":
            return expected_workers(rng), helmet_counts(0, without=0, unknown=0)
        case "equipment_all":
            return expected_workers(rng), equipment_counts(n(1, MAX_PEOPLE), without=0)
        case "equipment_some":
            persons = n(2, MAX_PEOPLE)
            return expected_workers(rng), equipment_counts(persons, without=n(1, persons - 1))
        case "equipment_none":
            persons = n(1, MAX_PEOPLE)
            return expected_workers(rng), equipment_counts(persons, without=persons)
        case "equipment_empty":
            return expected_workers(rng), equipment_counts(0, without=0)
    raise ValueError(f"no numbers are drawn for the outcome {outcome!r}")


def helmet_counts(persons: int, *, without: int, unknown: int) -> dict[str, int]:
    with_helmet = persons - without - unknown
    return {"persons": persons, "with_helmet": with_helmet, "without_helmet": without, "unknown": unknown}


def equipment_counts(persons: int, *, without: int) -> dict[str, int]:
    return {"persons": persons, "with_equipment": persons - without, "without_equipment": without}
