"""What the tools answer, in their exact shapes: work orders, detections drawn for a chosen outcome, errors.

Numbers are drawn per outcome so that every report outcome is common in the data: 0–60 people expected,
0–60 persons on the image, small crews and counts that miss the order by 1–3 often.
"""

import random
from datetime import date, datetime, time
from typing import Any

from agent.reports import Check, Observation
from prompts import load as load_prompts
from training_data import load

MAX_PEOPLE = 60
SMALL_CREW, SMALL_CREW_SHARE = 9, 1 / 3  # many orders send a few people (the demo database's send 1–5)
CLOSE_SHARE = 0.5
NO_ORDER_SHARE = 0.15  # safety and equipment checks on a day without a work order
# Where each tool failure happens: the work-order lookup, or the detector.
QUERY_FAILURES = ("unknown_site", "ambiguous_site", "bad_date")
DETECTION_FAILURES = ("no_image", "image_unreadable")
EQUIPMENT_FAILURE = "no_equipment_class"  # check_equipment only
NO_EQUIPMENT_SHARE = 0.5  # orders for a head count or a safety check often issue no equipment


def error(kind: str, **fields: Any) -> Observation:
    """A tool's error observation, worded as in prompts/observations.toml."""
    texts = load_prompts("observations")
    return {"error": texts["errors"][kind].format(**fields), "hint": texts["hints"][kind]}


def query_failure(rng: random.Random, kind: str, *, site: str, date: str | None, canonical: str) -> Observation:
    """query_work_order's error for the site and date as heard; `canonical` is the site meant."""
    if kind == "unknown_site":
        return error(kind, site=site)
    if kind == "ambiguous_site":
        candidates = sorted(rng.sample(candidate_sites(rng, site, canonical), 2))
        return error(kind, site=site, candidates="、".join(candidates))
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
    """query_work_order's answer; a day without an order has 0 expected workers, no leader, no equipment.

    An equipment check's order issues 1–3 items; another check's order issues none half the time."""
    if expected == 0:
        leader, equipment = None, []
    else:
        names = load("work_orders")
        leader = rng.choice(names["surnames"]) + "".join(rng.choices(names["given_names"], k=rng.randint(1, 2)))
        issues_none = check != "设备检查" and rng.random() < NO_EQUIPMENT_SHARE
        issued = set() if issues_none else set(rng.sample(names["equipment"], rng.randint(1, 3)))
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
    """A site image taken on `day` in working hours, named as a camera names it."""
    taken = datetime.combine(day, time(rng.randint(7, 18), rng.randint(0, 59), rng.randint(0, 59)))
    return f"images/{site}/" + rng.choice(load("work_orders")["image_names"]).format(t=taken)


def candidate_sites(rng: random.Random, heard: str, canonical: str) -> list[str]:
    """Sites a vague name could mean, as the lookup lists them: phases of the site meant, or names around it."""
    names = load("work_orders")
    if rng.random() < 0.5:
        return [canonical + phase for phase in names["candidate_phases"]]
    kind = rng.choice(names["candidate_kinds"])
    return [heard + place + kind for place in names["candidate_places"]]


def crew(rng: random.Random) -> int:
    """A number of people: a small crew (1–9) a third of the time, else 1–60."""
    return rng.randint(1, SMALL_CREW if rng.random() < SMALL_CREW_SHARE else MAX_PEOPLE)


def short_of(rng: random.Random, expected: int) -> int:
    """Fewer than `expected`: by 1–3 half the time, the close calls a report most often gets wrong."""
    return rng.randint(max(0, expected - 3) if rng.random() < CLOSE_SHARE else 0, expected - 1)


def more_than(rng: random.Random, expected: int) -> int:
    """More than `expected` (below 60): by 1–3 half the time."""
    return rng.randint(expected + 1, min(MAX_PEOPLE, expected + 3) if rng.random() < CLOSE_SHARE else MAX_PEOPLE)


def expected_workers(rng: random.Random) -> int:
    """The work order's head count where it does not decide the outcome."""
    return 0 if rng.random() < NO_ORDER_SHARE else crew(rng)


def counts(rng: random.Random, outcome: str) -> tuple[int, dict[str, int]]:
    """Expected workers and the detector's numbers (in observation key order) that give `outcome`."""
    n = rng.randint
    match outcome:
        case "people_normal":
            expected = crew(rng)
            return expected, {"persons": expected}
        case "people_absent":
            expected = crew(rng)
            return expected, {"persons": short_of(rng, expected)}
        case "people_excess":
            expected = min(crew(rng), MAX_PEOPLE - 1)
            return expected, {"persons": more_than(rng, expected)}
        case "people_no_order":
            return 0, {"persons": crew(rng)}
        case "helmets_all":
            persons = crew(rng)
            return expected_workers(rng), helmet_counts(persons, without=0, unknown=0)
        case "helmets_some":
            persons = max(2, crew(rng))
            without = n(1, persons - 1)
            return expected_workers(rng), helmet_counts(persons, without=without, unknown=n(0, persons - 1 - without))
        case "helmets_none":
            persons = crew(rng)
            without = n(1, persons)
            return expected_workers(rng), helmet_counts(persons, without=without, unknown=persons - without)
        case "helmets_unjudged":
            persons = crew(rng)
            return expected_workers(rng), helmet_counts(persons, without=0, unknown=n(1, persons))
        case "helmets_empty":
            return expected_workers(rng), helmet_counts(0, without=0, unknown=0)
        case "equipment_all":
            return expected_workers(rng), equipment_counts(crew(rng), without=0)
        case "equipment_some":
            persons = max(2, crew(rng))
            return expected_workers(rng), equipment_counts(persons, without=n(1, persons - 1))
        case "equipment_none":
            persons = crew(rng)
            return expected_workers(rng), equipment_counts(persons, without=persons)
        case "equipment_empty":
            return expected_workers(rng), equipment_counts(0, without=0)
    raise ValueError(f"no numbers are drawn for the outcome {outcome!r}")


def helmet_counts(persons: int, *, without: int, unknown: int) -> dict[str, int]:
    with_helmet = persons - without - unknown
    return {"persons": persons, "with_helmet": with_helmet, "without_helmet": without, "unknown": unknown}


def equipment_counts(persons: int, *, without: int) -> dict[str, int]:
    return {"persons": persons, "with_equipment": persons - without, "without_equipment": without}
