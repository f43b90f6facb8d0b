"""Build the demo work-order database `data/demo/demo.sqlite` and its site images, reproducibly.

    .venv/bin/python scripts/build_demo.py [--out data/demo] [--seed 2024]

The sites, the May 2024 work orders and the capture schedule come from a seeded random generator; the
images are derived from the only real photographs available offline, ultralytics' `bus.jpg` (4 people)
and `zidane.jpg` (2 people), by crops and scales whose people are known. Before anything is written,
the shipped detector must see exactly those people in each derived image, and none of them with a
helmet (nobody in either photo wears one), so the demo's answers are true. Everything is then imported
through the same code paths as `inspector db import …`, from the CSV files left beside the database.
"""

import argparse
import csv
import datetime as dt
import importlib.util
import io
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from agent.reports import CHECKS
from tools import db, images
from tools.context import DEFAULT_DETECTOR, DEMO_DATABASE
from tools.imports import (
    MANIFEST_COLUMNS,
    SITE_COLUMNS,
    WORK_ORDER_COLUMNS,
    import_images,
    import_sites,
    import_work_orders,
)

MONTH = [dt.date(2024, 5, day) for day in range(1, 32)]
CITIES = {
    "济南市": ["历下", "市中", "槐荫", "天桥", "历城", "长清", "章丘"],
    "青岛市": ["市南", "市北", "黄岛", "崂山", "城阳", "即墨"],
    "淄博市": ["张店", "淄川", "博山", "临淄"],
    "烟台市": ["芝罘", "福山", "莱山"],
    "潍坊市": ["潍城", "寒亭", "坊子", "奎文"],
}
LINES = [("济青线", "济南市"), ("胶济线", "淄博市"), ("烟威线", "烟台市")]
SURNAMES = "张王李赵刘陈杨黄周吴徐孙马朱胡郭何高林罗"
GIVEN_NAMES = "伟芳娜敏静磊强军洋勇艳杰涛明超霞平刚"
EQUIPMENT = ["验电器", "绝缘手套", "接地线", "安全带", "绝缘靴", "绝缘杆", "工具包", "标识牌", "灭火器", "对讲机"]


@dataclass(frozen=True)
class Variant:
    """A derived photograph and what is true about it."""

    name: str
    source: str  # a file of ultralytics/assets
    crop: tuple[int, int, int, int] | None  # left, upper, right, lower in the source
    scale: float
    persons: int


VARIANTS = (
    Variant("street", "bus.jpg", None, 0.6, 4),
    Variant("bench", "zidane.jpg", None, 0.4, 2),
    Variant("kerb", "bus.jpg", (400, 200, 810, 1080), 0.6, 1),
    Variant("facade", "bus.jpg", (0, 0, 810, 330), 0.6, 0),
)
Captures = dict[str, list[tuple[dt.datetime, Variant]]]  # site -> (capture time, what the photo shows)


def derive(variant: Variant) -> bytes:
    """The variant as JPEG bytes, the same on every run."""
    assets = Path(importlib.util.find_spec("ultralytics").submodule_search_locations[0]) / "assets"
    photo = Image.open(assets / variant.source).convert("RGB")
    if variant.crop:
        photo = photo.crop(variant.crop)
    if variant.scale != 1.0:
        photo = photo.resize((round(photo.width * variant.scale), round(photo.height * variant.scale)), Image.LANCZOS)
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def verify(derived: dict[Variant, bytes], folder: Path) -> None:
    """Fail unless the shipped detector sees each variant's people, none of them wearing a helmet."""
    from tools.detection import observation
    from tools.detector import load_detector
    from tools.scene import people

    detector = load_detector(DEFAULT_DETECTOR)
    for variant, data in derived.items():
        path = folder / f"{variant.name}.jpg"
        path.write_bytes(data)
        found = people(detector.detect([images.load(path)])[0], detector.persons_from_heads)
        seen = observation("check_helmets", variant.name, found)
        if seen["persons"] != variant.persons or seen["with_helmet"] != 0:
            raise SystemExit(f"variant {variant.name}: expected {variant.persons} people without helmets, saw {seen}")
        print(f"verified {variant.name}: {seen}")


def sites(rng: random.Random) -> list[dict[str, str]]:
    rows = []
    for city, districts in CITIES.items():
        short = city.removesuffix("市")
        rows.append({"name": f"{short}工地", "region": city, "aliases": short})
        for district in districts:
            rows.append({"name": f"{short}{district}工地", "region": f"{city}{district}区", "aliases": ""})
        for district in rng.sample(districts, 2):
            kv = rng.choice((110, 220))
            region = f"{city}{district}区"
            rows.append({"name": f"{district}{kv}kV变电站", "region": region, "aliases": f"{district}站"})
    for line, city in LINES:
        for tower in sorted(rng.sample(range(3, 40), 2)):
            rows.append({"name": f"{line}{tower}号塔段", "region": city, "aliases": ""})
    return rows


def schedule(rng: random.Random, names: list[str]) -> Captures:
    """Two captures per site on different days of the month, each showing one variant."""
    captures = {}
    for name in names:
        days = sorted(rng.sample(MONTH, 2))
        captures[name] = [
            (dt.datetime.combine(day, dt.time(rng.randint(7, 16), rng.choice((0, 15, 30, 45)))), rng.choice(VARIANTS))
            for day in days
        ]
    return captures


def work_orders(rng: random.Random, captures: Captures) -> list[dict[str, str]]:
    """Most weekdays, each site has one to three orders; on capture days 人数检测 is near the photo's count."""
    rows = []
    for name, shots in captures.items():
        shown = {when.date(): variant.persons for when, variant in shots}
        leader = rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES)
        for day in MONTH:
            if day.weekday() >= 5 or rng.random() < 0.2:
                continue
            for check in sorted(rng.sample(CHECKS, rng.randint(1, 3)), key=CHECKS.index):
                persons = shown.get(day)
                expected = max(0, persons + rng.choice((-1, 0, 0, 1))) if persons is not None else rng.randint(2, 40)
                rows.append(
                    {
                        "site": name,
                        "date": day.isoformat(),
                        "check": check,
                        "expected_workers": str(expected),
                        "leader": leader,
                        "equipment": "、".join(rng.sample(EQUIPMENT, rng.randint(1, 4))) if check == "设备检查" else "",
                    }
                )
    return rows


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def plan(seed: int) -> tuple[list[dict[str, str]], Captures, list[dict[str, str]]]:
    """The sites, their captures and their work orders for a seed."""
    rng = random.Random(seed)
    site_rows = sites(rng)
    captures = schedule(rng, [row["name"] for row in site_rows])
    return site_rows, captures, work_orders(rng, captures)


def build(out: Path, seed: int) -> None:
    derived = {variant: derive(variant) for variant in VARIANTS}
    scratch = out.parent / f".{out.name}-verify"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        verify(derived, scratch)
    finally:
        shutil.rmtree(scratch)
    site_rows, captures, order_rows = plan(seed)
    if out.exists():
        shutil.rmtree(out)
    (out / "images").mkdir(parents=True)
    manifest = []
    for name, shots in captures.items():
        for when, variant in shots:
            path = Path("images") / name / f"{when:%Y%m%d_%H%M%S}.jpg"
            (out / path).parent.mkdir(exist_ok=True)
            (out / path).write_bytes(derived[variant])
            manifest.append({"site": name, "captured_at": when.isoformat(sep=" "), "path": path.as_posix()})
    write_csv(out / "sites.csv", SITE_COLUMNS, site_rows)
    write_csv(out / "work_orders.csv", WORK_ORDER_COLUMNS, order_rows)
    write_csv(out / "images.csv", MANIFEST_COLUMNS, manifest)
    database = out / DEMO_DATABASE.name
    db.init(database)
    print(f"sites: {import_sites(database, out / 'sites.csv').added}")
    print(f"work orders: {import_work_orders(database, out / 'work_orders.csv').added}")
    print(f"images: {import_images(database, out / 'images.csv').added}")
    with db.writing(database) as connection:
        db.set_as_of(connection, max(dt.date.fromisoformat(row["date"]) for row in order_rows))
    print(f"wrote {database}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEMO_DATABASE.parent, help="folder to (re)create")
    parser.add_argument("--seed", type=int, default=2024)
    arguments = parser.parse_args()
    build(arguments.out, arguments.seed)


if __name__ == "__main__":
    main()
