"""Dialogues of every kind, each with its meta: greetings, requests, ask-backs and multi-turn exchanges.

A request naming a site and a check gets two tool calls (query_work_order, then the check's detector) and
the report `agent.reports.render` writes; a failing tool ends the calls and its error is reported. Tool
arguments are the site and date exactly as heard, noise included. A request missing its site or check gets
the matching question instead of a guess.
"""

import random
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from agent.reports import CHECKS, DETECTOR_FOR, Check, Observation, outcome, render
from prompts import load as load_prompts
from training_data.dates import SaidDate, draw_today, say, say_impossible
from training_data.deck import Deck
from training_data.noise import Level, NoiseOp, add_noise, draw_level
from training_data.observations import (
    DETECTION_FAILURES,
    EQUIPMENT_FAILURE,
    QUERY_FAILURES,
    counts,
    detection_failure,
    expected_workers,
    image_path,
    query_failure,
    work_order,
)
from training_data.sites import Site, SitePool, place_words
from training_data.templates import (
    CHECK_SLOTS,
    FAMILIES,
    Family,
    Piece,
    Template,
    Utterance,
    check_words,
    fill,
    heard,
    templates,
    text,
)

Kind = Literal["greet", "request", "ask_site", "ask_check", "multi"]
KIND_CARDS: dict[Kind, int] = {"greet": 4, "request": 31, "ask_site": 3, "ask_check": 3, "multi": 9}  # per 50
MULTI_VARIANTS = ("greet_then_request", "ask_back", "two_requests")
OPENERS: tuple[Family, ...] = ("no_site", "no_check", "vague")  # first turns of an ask-back exchange
FAILURE_SHARE = 0.06  # planned failures; noise that garbles a date adds about 1 % more (bad_date)
# The shipped detector has no equipment class, so the model must know that failure well: extra cards.
NO_EQUIPMENT_CLASS_CARDS = 3
DATE_SHARE = 0.4
VAGUE_SHARE = 0.5  # of single ask_site dialogues without a date
SAME_SITE_SHARE = 0.5  # of second requests in a row


@dataclass(frozen=True)
class Request:
    check: Check
    plan: str  # the outcome id to draw numbers for, or failed:<error kind>
    site: Site
    date: SaidDate | None

    @property
    def failure(self) -> str | None:
        return self.plan.removeprefix("failed:") if self.plan.startswith("failed:") else None


@dataclass
class Transcript:
    """A dialogue being written: its turns, and the meta that describes them."""

    rng: random.Random
    level: Level
    today: date
    conversations: list[dict[str, Any]] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    noise: list[NoiseOp] = field(default_factory=list)

    def user(self, template: Template, utterance: Utterance) -> Utterance:
        """Add the user's turn as heard (noise applied) and return what was heard."""
        noisy, ops = add_noise(self.rng, utterance, self.level)
        self.noise += [{"turn": len(self.conversations), **op} for op in ops]
        self.templates.append(template.id)
        self.conversations.append({"role": "user", "content": text(noisy)})
        return noisy

    def tool(self, name: str, parameters: dict[str, str], observation: Observation) -> None:
        turn = {"role": "tool", "name": name, "parameters": parameters, "observation": observation}
        self.conversations.append(turn)

    def reply(self, content: str, outcome_id: str) -> None:
        self.conversations.append({"role": "assistant", "content": content})
        self.outcomes.append(outcome_id)

    def meta(self, kind: Kind) -> dict[str, Any]:
        return {
            "kind": kind,
            "templates": self.templates,
            "checks": self.checks,
            "sites": [site.name for site in self.sites],
            "site_sources": [site.source for site in self.sites],
            "outcomes": self.outcomes,
            "noise": {"level": self.level, "ops": self.noise},
            "today": self.today.isoformat(),
        }


def outcomes_of(check: Check) -> list[str]:
    """The report outcomes of a check: those of prompts/reports.toml whose template starts with [check]."""
    return [key for key, line in load_prompts("reports")["outcomes"].items() if line.startswith(f"[{check}]")]


def failures_of(check: Check) -> list[str]:
    """The failures a check can meet, as deck cards."""
    equipment = [EQUIPMENT_FAILURE] * NO_EQUIPMENT_CLASS_CARDS if check == "设备检查" else []
    return [*QUERY_FAILURES, *DETECTION_FAILURES, *equipment]


class DialogueMaker:
    """Makes the dialogues of one split, from its templates (seen or held out) and its sites."""

    def __init__(
        self, rng: random.Random, *, held_out: bool, taken: set[str], lengthen: random.Random | None = None
    ) -> None:
        self._rng = rng
        self._replies = load_prompts("reports")
        self._sites = SitePool(rng, held_out=held_out, taken=taken, lengthen=lengthen)
        self._frames = {family: Deck(rng, templates(family, held_out=held_out)) for family in FAMILIES}
        self._words = {(c, slot): Deck(rng, check_words(c, slot)) for c in CHECKS for slot in CHECK_SLOTS}
        self._kinds = Deck(rng, [kind for kind, cards in KIND_CARDS.items() for _ in range(cards)])
        self._variants = Deck(rng, MULTI_VARIANTS)
        self._openers = Deck(rng, OPENERS)
        self._checks = Deck(rng, CHECKS)
        self._outcomes = {check: Deck(rng, outcomes_of(check)) for check in CHECKS}
        self._failures = {check: Deck(rng, failures_of(check)) for check in CHECKS}

    def make(self) -> dict[str, Any]:
        """One dialogue: {"conversations": [...], "meta": {...}}."""
        kind = self._kinds.draw()
        transcript = Transcript(self._rng, draw_level(self._rng), draw_today(self._rng))
        make = {
            "greet": self._greet,
            "request": self._request,
            "ask_site": self._ask_site,
            "ask_check": self._ask_check,
            "multi": self._multi,
        }[kind]
        make(transcript)
        return {"conversations": transcript.conversations, "meta": transcript.meta(kind)}

    # --- kinds ------------------------------------------------------------------------------------------

    def _greet(self, t: Transcript) -> None:
        template = self._frames["greeting"].draw()
        t.user(template, fill(template, {}))
        t.reply(self._replies["greeting"], "greeting")

    def _request(self, t: Transcript, site: Site | None = None) -> Request:
        request = self._plan(t, site)
        said = self._say(t, "request", request)
        site_heard = heard(said, "site")
        assert site_heard is not None, "every request frame names a site"
        self._answer(t, request, site_heard, heard(said, "date"))
        return request

    def _ask_site(self, t: Transcript) -> None:
        request = self._plan(t)
        vague = request.date is None and self._rng.random() < VAGUE_SHARE
        self._say(t, "vague" if vague else "no_site", request)
        t.reply(self._replies["ask_site"], "ask_site")

    def _ask_check(self, t: Transcript) -> None:
        said = self._say(t, "no_check", self._plan(t))
        t.reply(self._replies["ask_check"].format(site=heard(said, "site")), "ask_check")

    def _multi(self, t: Transcript) -> None:
        variant = self._variants.draw()
        if variant == "greet_then_request":
            self._greet(t)
            self._request(t)
        elif variant == "ask_back":
            self._ask_back(t)
        else:
            first = self._request(t)
            self._request(t, first.site if self._rng.random() < SAME_SITE_SHARE else None)

    def _ask_back(self, t: Transcript) -> None:
        """A request missing its site or check (or both), the questions and answers, then the tool calls."""
        request = self._plan(t)
        opener = self._openers.draw()
        said = self._say(t, "no_site" if opener == "vague" and request.date else opener, request)
        site, said_date = heard(said, "site"), heard(said, "date")
        if site is None:
            t.reply(self._replies["ask_site"], "ask_site")
            site = heard(self._say(t, "site_answer", request), "site")
            assert site is not None, "every site answer names a site"
        if heard(said, "check") is None:
            t.reply(self._replies["ask_check"].format(site=site), "ask_check")
            self._say(t, "check_answer", request)
        self._answer(t, request, site, said_date)

    # --- parts --------------------------------------------------------------------------------------------

    def _plan(self, t: Transcript, site: Site | None = None) -> Request:
        """What the user asks for and what the tools will answer: a check, an outcome or failure, a date."""
        check = self._checks.draw()
        if self._rng.random() < FAILURE_SHARE:
            plan = f"failed:{self._failures[check].draw()}"
        else:
            plan = self._outcomes[check].draw()
        if plan == "failed:bad_date":
            said_date = say_impossible(self._rng, t.today)
        else:
            said_date = say(self._rng, t.today) if self._rng.random() < DATE_SHARE else None
        return Request(check, plan, site or self._sites.draw(), said_date)

    def _say(self, t: Transcript, family: Family, request: Request) -> Utterance:
        """The user's turn from a frame of `family`, its slots filled from the request; returns it as heard."""
        template = self._frames[family].draw()
        values: dict[str, Utterance] = {}
        for slot in template.slots:
            if slot == "site":
                place = self._rng.choice(place_words(request.site.name))
                values[slot] = (Piece("site", request.site.name), Piece("frame", place))
                t.sites.append(request.site)
            elif slot == "date":
                values[slot] = (Piece("date", request.date.text),) if request.date else ()
            else:
                values[slot] = (Piece("check", self._words[request.check, slot].draw()),)
                t.checks.append(request.check)
        return t.user(template, fill(template, values))

    def _answer(self, t: Transcript, request: Request, site: str, said_date: str | None) -> None:
        """The tool calls for a complete request, with the site and date as heard, then the report."""
        check = request.check
        query = {"site": site, "check": check}
        detect = {"site": site}
        if said_date is not None:
            query["date"] = detect["date"] = said_date
        unreadable = request.date is not None and (request.date.day is None or said_date != request.date.text)
        failure = "bad_date" if unreadable else request.failure
        canonical = request.site.canonical
        if failure in QUERY_FAILURES:
            failed = query_failure(self._rng, failure, site=site, date=said_date, canonical=canonical)
            t.tool("query_work_order", query, failed)
            t.reply(render(check, failed, None), f"failed:{failure}")
            return
        day = request.date.day if request.date and request.date.day else t.today
        if failure is None:
            expected, numbers = counts(self._rng, request.plan)
            detection = {"image": image_path(self._rng, canonical, day), **numbers}
        else:
            expected = expected_workers(self._rng)
            detection = detection_failure(self._rng, failure, canonical=canonical, day=day)
        order = work_order(self._rng, canonical, day, check, expected)
        t.tool("query_work_order", query, order)
        t.tool(DETECTOR_FOR[check], detect, detection)
        t.reply(render(check, order, detection), f"failed:{failure}" if failure else outcome(check, order, detection))
