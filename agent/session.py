"""Opening an agent session from explicit paths: model (and prefix), database, detector configuration.

`chat`, `run` and `replay` all build their agent here, so they run the same model, tools and limits.
"""

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agent.chatglm_format import encode_prompt, tools_message
from agent.memory import Memory
from agent.prompting import Prompting
from agent.state_machine import Agent, Observer
from prompts import load
from tools.context import DEFAULT_DETECTOR, DEMO_DATABASE, REPO

if TYPE_CHECKING:
    from tools.sites import Site

DEFAULT_MODEL = REPO / "models" / "default"


@dataclass(frozen=True)
class SessionOptions:
    model: Path = DEFAULT_MODEL
    prefix: Path | None = None
    database: Path = DEMO_DATABASE
    detector: Path = DEFAULT_DETECTOR
    evidence_dir: Path | None = None
    image_roots: tuple[Path, ...] = field(default_factory=tuple)
    device: str = "auto"
    today: dt.date | None = None  # None: the database's snapshot date, else the calendar's


def today_for(options: SessionOptions) -> tuple[dt.date, str]:
    """The day "今天" means, and where it comes from: the option, the database snapshot, or the calendar."""
    from tools import db

    if options.today is not None:
        return options.today, "--today"
    with db.reading(options.database) as connection:
        snapshot = db.as_of(connection)
    if snapshot is not None:
        return snapshot, f"snapshot date of {options.database.name}"
    return dt.date.today(), "calendar"


def registered_sites(database: Path) -> list["Site"]:
    from tools import db

    with db.reading(database) as connection:
        return db.sites(connection)


def site_mentions(sites: list["Site"]) -> "SiteMentions":
    return SiteMentions({name: site.name for site in sites for name in site.names if len(name) > 1})


@dataclass(frozen=True)
class SiteMentions:
    """Which registered sites a request names: the longest names found, so 历城 inside 历城变电站 is one site."""

    names: dict[str, str]  # a name or alias → the site's name

    def __call__(self, text: str) -> list[str]:
        spans = [(start, start + len(name), name) for name in self.names for start in _find_all(text, name)]
        longest = [s for s in spans if not any(o[0] <= s[0] and s[1] <= o[1] and o != s for o in spans)]
        return sorted({self.names[name] for _, _, name in longest})


def _find_all(text: str, name: str) -> list[int]:
    starts, start = [], text.find(name)
    while start >= 0:
        starts.append(start)
        start = text.find(name, start + 1)
    return starts


def open_agent(options: SessionOptions, observer: Observer = lambda kind, payload: None) -> Agent:
    """The agent over the shipped or given model, the tools on the given database and detector."""
    from agent.call_constraint import CallConstraint
    from agent.glm_backend import GLMBackend
    from agent.loading import LoadOptions
    from tools.catalog import build_registry
    from tools.context import ToolContext
    from tools.sites import unambiguous_names

    load_options = LoadOptions(device=options.device, prefix=options.prefix)  # type: ignore[arg-type]
    day, _ = today_for(options)
    context = ToolContext(
        database=options.database,
        detector=options.detector,
        image_roots=options.image_roots,
        evidence_dir=options.evidence_dir,
        today=lambda: day,
    )
    registry = build_registry(context)
    sites = registered_sites(options.database)
    constraint = CallConstraint.of(registry.tools(), unambiguous_names(sites))
    backend = GLMBackend.load(options.model, load_options, constraint)
    budget = backend.context - load("agent")["limits"]["max_new_tokens"]
    prompting = Prompting.of(options.prefix or options.model)
    memory = Memory(
        tools_message(registry.descriptions()) if prompting.tools_in_system else None,
        lambda messages: len(encode_prompt(backend.tokenizer, messages)),
        budget,
        prompting.fresh_after_check,
    )
    return Agent(backend, registry, memory, sites_in=site_mentions(sites), observer=observer)
