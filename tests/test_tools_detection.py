"""The shipped detector on real photographs, the detection tools, bad input, and other class mappings."""

import datetime as dt
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from agent.cli import app
from agent.errors import ConfigError
from tools import db
from tools.catalog import build_registry
from tools.context import DEFAULT_DETECTOR, ToolContext
from tools.detector import Detector, load_detector
from tools.detector_config import DetectorConfig, ModelSpec, load_config, save_config, weights_path
from tools.imports import import_images, import_sites

ASSETS = Path(importlib.util.find_spec("ultralytics").submodule_search_locations[0]) / "assets"
BUS, ZIDANE = ASSETS / "bus.jpg", ASSETS / "zidane.jpg"
PEOPLE = ModelSpec(name="people", weights="package:fall_detection/models/best.pt", classes={"Normal": "person"})
HELMETS = "package:helmet_detector_pkg/weights/best.pt"


def run_detect(*arguments):
    return CliRunner().invoke(app, ["detect", *map(str, arguments)])


def json_lines(output):
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_the_shipped_defaults_count_the_people_in_ultralytics_photos(tmp_path):
    result = run_detect(BUS, ZIDANE, "--json", "--save", tmp_path / "evidence")
    assert result.exit_code == 0, result.output
    assert json_lines(result.stdout) == [
        {"image": str(BUS), "persons": 4, "with_helmet": 0, "without_helmet": 2, "unknown": 2},
        {"image": str(ZIDANE), "persons": 2, "with_helmet": 0, "without_helmet": 1, "unknown": 1},
    ]
    assert "fall_detection/models/best.pt" in result.stderr
    saved = sorted((tmp_path / "evidence").iterdir())
    assert [path.name.split("-")[0] for path in saved] == ["bus", "zidane"]
    assert all(path.name.endswith("-check_helmets.jpg") for path in saved)
    assert Image.open(saved[1]).size == Image.open(ZIDANE).size


def test_bad_images_fail_one_by_one_and_the_rest_go_on(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "notes.jpg").write_text("这不是图片")
    (bad / "truncated.jpg").write_bytes(BUS.read_bytes()[:20000])
    Image.new("1", (12000, 12000)).save(bad / "huge.png")
    (tmp_path / "no-images").mkdir()
    (tmp_path / "no-images" / "readme.txt").write_text("nothing here")
    Image.open(ZIDANE).convert("L").save(tmp_path / "grey.png")
    Image.open(ZIDANE).convert("RGBA").save(tmp_path / "rgba.png")
    inputs = [tmp_path / "missing.jpg", bad, tmp_path / "no-images", tmp_path / "grey.png", tmp_path / "rgba.png"]
    result = run_detect(*inputs, "--check", "people", "--json")
    assert result.exit_code != 0
    assert str(result.exception) == "6 of 8 image(s) could not be checked"
    rows = json_lines(result.stdout)
    assert [row["image"] for row in rows] == [
        str(tmp_path / name)
        for name in ("missing.jpg", "bad/empty.jpg", "bad/huge.png", "bad/notes.jpg", "bad/truncated.jpg", "no-images")
    ] + [str(tmp_path / "grey.png"), str(tmp_path / "rgba.png")]
    reasons = [
        "no such file",
        "empty file",
        "12000×12000 is larger than 100 megapixels",
        "not an image file",
        "damaged or truncated: image file is truncated",
        "a folder without images",
    ]
    for row, reason in zip(rows, reasons, strict=False):
        assert row["error"].startswith(f"图像无法读取: {row['image']}: {reason}") or row["error"].startswith(
            f"{row['image']}: {reason}"
        )
    assert rows[6:] == [
        {"image": str(tmp_path / "grey.png"), "persons": 2},
        {"image": str(tmp_path / "rgba.png"), "persons": 2},
    ]
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 6


def test_equipment_cannot_be_checked_without_an_equipment_class():
    result = run_detect(BUS, "--check", "equipment")
    assert result.exit_code != 0 and str(result.exception) == "当前检测模型没有设备类别, 无法检查设备"


@pytest.fixture
def site_database(tmp_path):
    database = tmp_path / "db" / "sites.sqlite"
    db.init(database)
    (tmp_path / "sites.csv").write_text("name,region,aliases\n济南工地,济南市,济南\n空工地,,\n", encoding="utf-8")
    import_sites(database, tmp_path / "sites.csv")
    photos = tmp_path / "photos" / "济南工地"
    photos.mkdir(parents=True)
    shutil.copy(ZIDANE, photos / "20240502_090000.jpg")
    shutil.copy(BUS, photos / "20240503_080000.jpg")
    import_images(database, tmp_path / "photos")
    shutil.copy(ZIDANE, tmp_path / "outside.jpg")
    return database


def test_detection_tools_answer_by_site_date_or_image(site_database, tmp_path):
    evidence = tmp_path / "evidence"
    context = ToolContext(database=site_database, evidence_dir=evidence, today=lambda: dt.date(2024, 5, 3))
    registry = build_registry(context)
    assert registry.call("count_people", {"site": "济南"}) == {
        "image": "../photos/济南工地/20240503_080000.jpg",
        "persons": 4,
    }
    assert registry.call("check_helmets", {"site": "济南工地", "date": "5月2日"}) == {
        "image": "../photos/济南工地/20240502_090000.jpg",
        "persons": 2,
        "with_helmet": 0,
        "without_helmet": 1,
        "unknown": 1,
    }
    assert len(list(evidence.iterdir())) == 2
    assert registry.call("count_people", {"site": "济南", "date": "5月1日"}) == {
        "error": "站点“济南工地”在2024-05-01及之前没有现场图像",
        "hint": "用 inspector db import images 导入该站点的现场图像",
    }
    assert registry.call("count_people", {"site": "空工地"})["error"] == "站点“空工地”在2024-05-03及之前没有现场图像"
    assert registry.call("check_helmets", {"site": "北京"})["error"] == "未找到站点“北京”"
    assert registry.call("check_equipment", {"site": "济南"})["error"] == "当前检测模型没有设备类别, 无法检查设备"
    for arguments in ({}, {"site": "济南", "image": "x.jpg"}, {"image": "x.jpg", "date": "今天"}):
        assert registry.call("count_people", arguments)["error"].startswith("工具 count_people 的参数有误")


def test_images_outside_the_roots_are_refused(site_database, tmp_path):
    registry = build_registry(ToolContext(database=site_database))
    outside = registry.call("count_people", {"image": str(tmp_path / "outside.jpg")})
    assert outside == {"error": f"图像无法读取: {tmp_path / 'outside.jpg'}", "hint": "检查图像文件是否存在且完整"}
    assert registry.call("count_people", {"image": "../photos/../outside.jpg"})["error"].startswith("图像无法读取")
    assert registry.call("count_people", {"image": "../photos/济南工地/none.jpg"})["error"].startswith("图像无法读取")
    allowed = build_registry(ToolContext(database=site_database, image_roots=(tmp_path,)))
    assert allowed.call("count_people", {"image": "../outside.jpg"}) == {"image": "../outside.jpg", "persons": 2}


def test_a_helmet_dataset_model_alone_counts_heads_as_people(tmp_path):
    # Like a YOLO trained on the Safety-Helmet-Wearing-Dataset (classes hat, person = a bare head): no class
    # is a whole person, so each judged head is one person.
    heads = ModelSpec(name="heads", weights=HELMETS, classes={"With Helmet": "helmet", "Without Helmet": "no_helmet"})
    config = DetectorConfig(models=(heads,))
    save_config(config, tmp_path / "heads.json")
    context = ToolContext(database=tmp_path / "unused.sqlite", detector=tmp_path / "heads.json")
    detector = load_detector(context.detector.resolve())
    assert detector.persons_from_heads
    result = run_detect(BUS, "--json", "--detector", tmp_path / "heads.json")
    assert json_lines(result.stdout) == [
        {"image": str(BUS), "persons": 2, "with_helmet": 0, "without_helmet": 2, "unknown": 0}
    ]


def test_any_class_can_be_mapped_to_equipment(tmp_path):
    # The shipped checkpoints have no equipment class; mapping the bare-head class to `equipment` exercises
    # the equipment path with real detections: the one person whose bare head is found "carries" it.
    heads_as_items = ModelSpec(name="items", weights=HELMETS, classes={"Without Helmet": "equipment"})
    save_config(DetectorConfig(models=(PEOPLE, heads_as_items)), tmp_path / "equipment.json")
    result = run_detect(ZIDANE, "--json", "--check", "equipment", "--detector", tmp_path / "equipment.json")
    assert json_lines(result.stdout) == [
        {"image": str(ZIDANE), "persons": 2, "with_equipment": 1, "without_equipment": 1}
    ]


def test_an_unknown_class_name_is_an_error_naming_the_valid_ones(tmp_path):
    wrong = ModelSpec(name="heads", weights=HELMETS, classes={"hat": "helmet"})
    valid = "its classes are 'With Helmet', 'Without Helmet'"
    with pytest.raises(ConfigError, match=f"model heads has no class 'hat'; {valid}"):
        Detector(DetectorConfig(models=(wrong,)), tmp_path / "x.json")


def test_configs_round_trip_and_resolve_weights(tmp_path):
    default = load_config(DEFAULT_DETECTOR)
    assert default.roles == {"person", "helmet", "no_helmet"}
    save_config(default, tmp_path / "copy.json")
    assert load_config(tmp_path / "copy.json") == default
    assert [weights_path(spec, DEFAULT_DETECTOR).name for spec in default.models] == ["best.pt", "best.pt"]
    (tmp_path / "w.pt").write_bytes(b"")
    local = ModelSpec(name="mine", weights="w.pt", classes={"x": "person"})
    assert weights_path(local, tmp_path / "config.json") == tmp_path / "w.pt"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"models": []}', "models: Tuple should have at least 1 item"),
        ('{"models": [{"name": "a", "weights": "w.pt", "classes": {"x": "hat"}}]}', "models.0.classes.x: Input"),
        ('{"models": [{"name": "a", "weights": "w.pt", "classes": {"x": "person"}, "conf": 0.5}]}', "Extra inputs"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_configs_are_one_line_errors(tmp_path, text, message):
    (tmp_path / "c.json").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "c.json")


def test_weights_are_only_explicit_local_files(tmp_path):
    for weights, message in [
        ("yolov8n.pt", "no weights file at"),
        ("package:no_such_package/best.pt", "package 'no_such_package' is not installed"),
        ("package:fall_detection/missing.pt", "no weights file at"),
    ]:
        with pytest.raises(ConfigError, match=message):
            weights_path(ModelSpec(name="m", weights=weights, classes={"x": "person"}), tmp_path / "c.json")
    (tmp_path / "fake.pt").write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="not a YOLO checkpoint"):
        fake = ModelSpec(name="m", weights="fake.pt", classes={"x": "person"})
        Detector(DetectorConfig(models=(fake,)), tmp_path / "c.json")
