import datetime as dt
import sqlite3

import pytest
from PIL import Image
from typer.testing import CliRunner

from agent.cli import app
from agent.errors import ConfigError, UserError
from tools import db
from tools.catalog import build_registry
from tools.context import ToolContext
from tools.imports import BadRows, import_images, import_sites, import_work_orders

SITES_CSV = "name,region,aliases\n济南工地,济南市,济南\n历城220kV变电站,济南市历城区,历城站;历城\n"
ORDERS_CSV = (
    "site,date,check,expected_workers,leader,equipment\n"
    "济南,2024-05-03,人数检测,47,张伟,验电器、绝缘手套\n"
    "历城站,2024-05-03,安全检查,12,,\n"
    "\n"
    "济南工地,2024-05-04,设备检查,5,李娜,验电器;接地线\n"
)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "orders.sqlite"
    assert db.init(path) == db.VERSION
    import_sites(path, write(tmp_path / "sites.csv", SITES_CSV))
    return path


def snapshot(path):
    with db.reading(path) as connection:
        return [
            connection.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
            for table in ("sites", "site_aliases", "work_orders", "work_order_equipment", "images", "image_roots")
        ]


def photo(path, when=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (64, 48), "orange")
    exif = Image.Exif()
    if when:
        exif[306] = when
    image.save(path, exif=exif)
    return path


def test_init_is_idempotent_and_refuses_newer_files(tmp_path):
    path = tmp_path / "x.sqlite"
    assert db.init(path) == db.VERSION
    assert db.init(path) == 0
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {db.VERSION + 1}")
    with pytest.raises(ConfigError, match="newer"):
        db.init(path)
    with pytest.raises(ConfigError, match=f"expected {db.VERSION}"):
        db.reading(path).__enter__()


def test_an_older_file_migrates_forward_and_keeps_its_rows(database):
    with sqlite3.connect(database) as connection:
        connection.execute("DROP TABLE snapshot")
        connection.execute("PRAGMA user_version = 1")
    assert db.init(database) == db.VERSION - 1
    with db.reading(database) as connection:
        assert db.as_of(connection) is None
        assert len(db.sites(connection)) > 0
    with db.writing(database) as connection:
        db.set_as_of(connection, dt.date(2024, 5, 31))
    with db.reading(database) as connection:
        assert db.as_of(connection) == dt.date(2024, 5, 31)


def test_missing_database_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="inspector db init"), db.reading(tmp_path / "none.sqlite"):
        pass


def test_the_read_connection_is_read_only_with_foreign_keys(database):
    with db.reading(database) as connection:
        assert connection.execute("PRAGMA foreign_keys").fetchone() == (1,)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            connection.execute("INSERT INTO sites (name) VALUES ('x')")
    with db.writing(database) as connection, pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        connection.execute("INSERT INTO site_aliases VALUES ('x', 99)")


def test_imported_work_orders_are_queried(database, tmp_path):
    assert import_work_orders(database, write(tmp_path / "o.csv", ORDERS_CSV)).added == 3
    with db.reading(database) as connection:
        sites = {site.name: site for site in db.sites(connection)}
        assert sites["历城220kV变电站"].aliases == ("历城", "历城站")
        orders = db.work_orders(connection, sites["济南工地"])
    assert [(o.date, o.check, o.expected_workers, o.leader, o.equipment) for o in orders] == [
        (dt.date(2024, 5, 3), "人数检测", 47, "张伟", ("验电器", "绝缘手套")),
        (dt.date(2024, 5, 4), "设备检查", 5, "李娜", ("验电器", "接地线")),
    ]


@pytest.mark.parametrize(
    ("rows", "problems"),
    [
        (
            "济南,2024-05-05,人数检测,3,王,\n北京,2024-05-03,人数检测,4,王,\n济南,5月3日,人数检测,4,王,\n"
            "济南,2024-05-05,巡视,4,王,\n济南,2024-05-06,人数检测,-1,王,\n济南,2024-05-05,人数检测,9,赵,\n"
            "济南,2024-05-07\n",
            [
                "line 3: unknown site “北京”",
                "line 4: date “5月3日” is not YYYY-MM-DD",
                "line 5: check “巡视” is not one of 人数检测、安全检查、设备检查",
                "line 6: expected_workers “-1” is not a whole number",
                "line 7: 济南工地 already has a 人数检测 order on 2024-05-05",
                "line 8: expected 6 columns, found 2",
            ],
        ),
        ("济南,2024-05-03,人数检测,1,王,\n", ["line 2: 济南工地 already has a 人数检测 order on 2024-05-03"]),
    ],
)
def test_a_bad_work_order_file_changes_nothing(database, tmp_path, rows, problems):
    import_work_orders(database, write(tmp_path / "good.csv", ORDERS_CSV))
    before = snapshot(database)
    header = ORDERS_CSV.splitlines()[0]
    with pytest.raises(BadRows, match="nothing imported") as caught:
        import_work_orders(database, write(tmp_path / "bad.csv", f"{header}\n{rows}"))
    assert [p.split(" (")[0].split("; add")[0] for p in caught.value.problems] == problems
    assert snapshot(database) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "header must be site,date,check"),
        (b"site,date\n", "found site,date"),
        ("site,date,check,expected_workers,leader,equipment\n济南".encode("gbk"), "not UTF-8"),
        (b'site,date,check,expected_workers,leader,equipment\n"unterminated\n', "not a valid CSV"),
    ],
)
def test_unusable_work_order_files(database, tmp_path, content, message):
    (tmp_path / "x.csv").write_bytes(content)
    with pytest.raises(UserError, match=message):
        import_work_orders(database, tmp_path / "x.csv")
    with pytest.raises(UserError, match="no such file"):
        import_work_orders(database, tmp_path / "missing.csv")


def test_sites_with_clashing_names_are_rejected(database, tmp_path):
    before = snapshot(database)
    csv = "name,region,aliases\n新站,,济南\n济南工地,,\n另一站,,甲;甲\n好站,,\n"
    with pytest.raises(BadRows) as caught:
        import_sites(database, write(tmp_path / "s.csv", csv))
    assert caught.value.problems == [
        "line 2: name or alias used twice: 济南",
        "line 3: name or alias used twice: 济南工地",
        "line 4: name or alias used twice: 甲",
    ]
    assert snapshot(database) == before


def test_images_from_site_folders(database, tmp_path):
    folder = tmp_path / "photos"
    photo(folder / "济南" / "20240503_083000.jpg")
    photo(folder / "济南" / "IMG_0001.jpg", when="2024:05:04 09:10:11")
    photo(folder / "历城220kV变电站" / "day2" / "2024-05-02T07-00-00.png")
    (folder / "济南" / "notes.txt").write_text("not an image, not looked at")
    assert import_images(database, folder).added == 3
    assert import_images(database, folder).skipped == 3
    with db.reading(database) as connection:
        jinan = next(site for site in db.sites(connection) if site.name == "济南工地")
        latest = db.latest_image(connection, jinan, None)
        before_4th = db.latest_image(connection, jinan, dt.datetime(2024, 5, 4))
        assert db.latest_image(connection, jinan, dt.datetime(2024, 5, 3, 8, 30)) is None
        assert db.image_roots(connection, database) == [tmp_path, folder]
    assert latest == db.SiteImage("photos/济南/IMG_0001.jpg", dt.datetime(2024, 5, 4, 9, 10, 11))
    assert before_4th.path == "photos/济南/20240503_083000.jpg"


def test_a_bad_image_folder_changes_nothing(database, tmp_path):
    folder = tmp_path / "photos"
    photo(folder / "济南" / "20240503_083000.jpg")
    photo(folder / "北京" / "20240503_083000.jpg")
    photo(folder / "济南" / "IMG_0002.jpg")
    photo(folder / "loose-20240503_083000.jpg")
    (folder / "济南" / "20240505_083000.jpg").write_text("text")
    before = snapshot(database)
    with pytest.raises(BadRows) as caught:
        import_images(database, folder)
    assert [problem.split(":")[0] for problem in caught.value.problems] == [
        "loose-20240503_083000.jpg",
        "北京/20240503_083000.jpg",
        "济南/20240505_083000.jpg",
        "济南/IMG_0002.jpg",
    ]
    assert "not an image file" in caught.value.problems[2]
    assert snapshot(database) == before
    with pytest.raises(UserError, match="no images found"):
        import_images(database, (tmp_path / "empty").mkdir() or tmp_path / "empty")


def test_images_from_a_manifest(database, tmp_path):
    photo(tmp_path / "cams" / "a.jpg")
    photo(tmp_path / "outside.jpg")
    manifest = write(tmp_path / "cams" / "m.csv", "site,captured_at,path\n历城,2024-05-03 10:00,a.jpg\n")
    assert import_images(database, manifest).added == 1
    bad = write(
        tmp_path / "cams" / "bad.csv",
        "site,captured_at,path\n历城,yesterday,a.jpg\n"
        "历城,2024-05-03 10:00,../outside.jpg\n历城,2024-05-03 10:00,b.jpg\n",
    )
    with pytest.raises(BadRows) as caught:
        import_images(database, bad)
    expected = [
        "line 2: captured_at “yesterday” is not",
        "line 3: 图像无法读取: ../outside.jpg: outside the configured image roots",
        "line 4: 图像无法读取: b.jpg: no such file",
    ]
    assert len(caught.value.problems) == len(expected)
    for problem, start in zip(caught.value.problems, expected, strict=True):
        assert problem.startswith(start)


def test_query_work_order_tool(database, tmp_path):
    import_work_orders(database, write(tmp_path / "o.csv", ORDERS_CSV))
    registry = build_registry(ToolContext(database=database, today=lambda: dt.date(2024, 5, 4)))
    assert registry.call("query_work_order", {"site": "济南", "check": "人数检测", "date": "昨天"}) == {
        "site": "济南工地",
        "date": "2024-05-03",
        "check": "人数检测",
        "expected_workers": 47,
        "leader": "张伟",
        "equipment": ["验电器", "绝缘手套"],
    }
    assert registry.call("query_work_order", {"site": "历城变电站", "check": "人数检测"}) == {
        "site": "历城220kV变电站",
        "date": "2024-05-04",
        "check": "人数检测",
        "expected_workers": 0,
        "leader": None,
        "equipment": [],
    }
    assert registry.call("query_work_order", {"site": "北京", "check": "人数检测"})["error"] == "未找到站点“北京”"
    assert registry.call("query_work_order", {"site": "济南", "check": "人数检测", "date": "下周"})["error"] == (
        "无法识别日期“下周”"
    )
    missing = build_registry(ToolContext(database=tmp_path / "none.sqlite"))
    observation = missing.call("query_work_order", {"site": "济南", "check": "人数检测"})
    assert observation["error"].startswith("工具 query_work_order 运行失败: no work-order database")


def test_db_commands(tmp_path):
    runner = CliRunner()
    database = str(tmp_path / "cli.sqlite")
    assert runner.invoke(app, ["db", "init", "--db", database]).exit_code == 0
    sites = write(tmp_path / "sites.csv", SITES_CSV)
    result = runner.invoke(app, ["db", "import", "sites", str(sites), "--db", database])
    assert result.exit_code == 0 and "2 sites imported" in result.output
    orders = write(tmp_path / "orders.csv", ORDERS_CSV)
    assert runner.invoke(app, ["db", "import", "work-orders", str(orders), "--db", database]).exit_code == 0
    result = runner.invoke(app, ["db", "orders", "--site", "济南", "--date", "2024年5月3日", "--db", database])
    assert result.exit_code == 0 and "验电器、绝缘手套" in result.output and "2024-05-04" not in result.output
    result = runner.invoke(app, ["db", "sites", "--db", database], env={"COLUMNS": "200"})
    assert "历城220kV变电站" in result.output and "历城、历城站" in result.output
    result = runner.invoke(app, ["db", "import", "work-orders", str(orders), "--db", database])
    assert isinstance(result.exception, BadRows) and "line 2: 济南工地 already has" in result.output
