"""`count_people`, `check_helmets`, `check_equipment`: what the configured detector sees in a site image.

A call names a site (and optionally a day: the site's latest image captured by the end of that day) or
an image path (relative to the database's folder, or absolute); either way the image must lie inside
the configured image roots. With an evidence folder configured, each call also saves the image with its
boxes drawn.
"""

import datetime as dt
from pathlib import Path
from typing import Literal

from tools import db, evidence, images
from tools.context import ToolContext
from tools.dates import resolve_date
from tools.detector import load_detector
from tools.detector_config import DetectorConfig, load_config
from tools.observations import Failure, Observation
from tools.scene import Person, people
from tools.sites import resolve_site

DetectionTool = Literal["count_people", "check_helmets", "check_equipment"]


def require_roles(tool: DetectionTool, config: DetectorConfig) -> None:
    """A detector without an `equipment` class cannot answer check_equipment, and says so."""
    if tool == "check_equipment" and "equipment" not in config.roles:
        raise Failure("no_equipment_class")


def observation(tool: DetectionTool, image: str, found: list[Person]) -> Observation:
    """The tool's answer about one image, with the keys (in the order) the language model was trained on."""
    persons = len(found)
    if tool == "count_people":
        return {"image": image, "persons": persons}
    if tool == "check_helmets":
        states = [person.helmet for person in found]
        with_helmet, without_helmet = states.count("helmet"), states.count("no_helmet")
        return {
            "image": image,
            "persons": persons,
            "with_helmet": with_helmet,
            "without_helmet": without_helmet,
            "unknown": states.count("unknown"),
        }
    equipped = sum(1 for person in found if person.equipment)
    return {"image": image, "persons": persons, "with_equipment": equipped, "without_equipment": persons - equipped}


def _located(ctx: ToolContext, site: str | None, date: str | None, image: str | None) -> tuple[str, Path]:
    """The image a call is about: as the observation names it, and as a resolved file inside the roots."""
    folder = ctx.database.resolve().parent
    with db.reading(ctx.database) as connection:
        roots = [*db.image_roots(connection, ctx.database), *ctx.image_roots]
        if image is not None:
            return image, images.inside_roots(folder / image, roots, image)
        assert site is not None
        found = resolve_site(site, db.sites(connection))
        day = resolve_date(date, ctx.today()) if date is not None else None
        until = dt.datetime.combine(day + dt.timedelta(days=1), dt.time()) if day else None
        latest = db.latest_image(connection, found, until)
    if latest is None:
        raise Failure("no_image", site=found.name, date=(day or ctx.today()).isoformat())
    return latest.path, images.inside_roots(folder / latest.path, roots, latest.path)


def observe(
    ctx: ToolContext, tool: DetectionTool, site: str | None, date: str | None, image: str | None
) -> Observation:
    if (site is None) == (image is None) or (image is not None and date is not None):
        raise Failure("bad_arguments", tool=tool, problems="请给出 site (可加 date) 或 image, 二者取一")
    require_roles(tool, load_config(ctx.detector))
    shown, path = _located(ctx, site, date, image)
    pixels = images.load(path, shown)
    detector = load_detector(ctx.detector.resolve())
    found = people(detector.detect([pixels])[0], detector.persons_from_heads)
    if ctx.evidence_dir is not None:
        evidence.save(pixels, found, shown, tool, ctx.evidence_dir)
    return observation(tool, shown, found)
