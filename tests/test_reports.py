"""The report rules: every outcome of the seed's twelve templates, plus failures, rendered from prompts/."""

from collections import defaultdict

import pytest

from agent.reports import outcome, render, report_numbers, report_outcome
from prompts import load

ORDER = {"site": "济南工地", "date": "2024-05-03", "check": "人数检测", "expected_workers": 47, "leader": "张伟"}


def people(persons: int, expected: int = 47) -> str:
    return render("人数检测", {**ORDER, "expected_workers": expected}, {"image": "a.jpg", "persons": persons})


def test_people_outcomes():
    assert people(47) == "[人数检测] 应到47人, 实到47人, 无人缺勤, 正常出工"
    assert people(34) == "[人数检测] 应到47人, 实到34人, 有人缺勤"
    assert people(50) == "[人数检测] 应到47人, 实到50人, 人数异常, 可能存在非法进入"
    assert people(3, expected=0) == "[人数检测] 应到0人, 实到3人, 无工单出工, 可能存在非法进入"
    assert people(0, expected=0) == "[人数检测] 应到0人, 实到0人, 无人缺勤, 正常出工"


@pytest.mark.parametrize(
    ("counts", "expected_id", "report"),
    [
        ((5, 5, 0, 0), "helmets_all", "[安全检查] 实到5人, 均佩戴安全帽"),
        ((5, 3, 2, 0), "helmets_some", "[安全检查] 实到5人, 3人佩戴安全帽, 存在安全隐患"),
        ((4, 0, 4, 0), "helmets_none", "[安全检查] 实到4人, 0人佩戴安全帽, 存在安全隐患"),
        ((0, 0, 0, 0), "helmets_empty", "[安全检查] 现场无人施工"),
        ((5, 3, 0, 2), "helmets_unjudged", "[安全检查] 实到5人, 3人佩戴安全帽, 2人无法判断, 需人工复核"),
        ((5, 2, 1, 2), "helmets_some", "[安全检查] 实到5人, 2人佩戴安全帽, 存在安全隐患"),
    ],
)
def test_helmet_outcomes(counts, expected_id, report):
    persons, with_helmet, without_helmet, unknown = counts
    detection = {"image": "a.jpg", "persons": persons, "with_helmet": with_helmet}
    detection |= {"without_helmet": without_helmet, "unknown": unknown}
    assert outcome("安全检查", ORDER, detection) == expected_id
    assert render("安全检查", ORDER, detection) == report


@pytest.mark.parametrize(
    ("persons", "without", "expected_id", "report"),
    [
        (6, 0, "equipment_all", "[设备检查] 实到6人, 均正常携带设备"),
        (6, 2, "equipment_some", "[设备检查] 实到6人, 2人未携带设备"),
        (6, 6, "equipment_none", "[设备检查] 实到6人, 6人未携带设备"),
        (0, 0, "equipment_empty", "[设备检查] 现场无人施工"),
    ],
)
def test_equipment_outcomes(persons, without, expected_id, report):
    detection = {"image": "a.jpg", "persons": persons, "with_equipment": persons - without}
    detection["without_equipment"] = without
    assert outcome("设备检查", ORDER, detection) == expected_id
    assert render("设备检查", ORDER, detection) == report


def test_every_outcome_template_is_reachable_and_renders():
    reached = set()
    for persons in range(4):
        for expected in range(4):
            reached.add(outcome("人数检测", {"expected_workers": expected}, {"persons": persons}))
        for with_helmet in range(persons + 1):
            for without_helmet in range(persons - with_helmet + 1):
                unknown = persons - with_helmet - without_helmet
                detection = {"image": "a.jpg", "persons": persons, "with_helmet": with_helmet}
                detection |= {"without_helmet": without_helmet, "unknown": unknown}
                reached.add(outcome("安全检查", ORDER, detection))
                assert render("安全检查", ORDER, detection).startswith("[安全检查] ")
        for without in range(persons + 1):
            detection = {"persons": persons, "with_equipment": persons - without, "without_equipment": without}
            reached.add(outcome("设备检查", ORDER, detection))
    assert reached == set(load("reports")["outcomes"])


def test_a_failed_tool_is_reported_instead_of_numbers():
    error = {"error": "未找到站点“火星”", "hint": "用 inspector db sites 查看已登记的站点"}
    assert render("人数检测", error, None) == "[人数检测] 无法完成: 未找到站点“火星”"
    assert render("设备检查", ORDER, {"error": "当前检测模型没有设备类别, 无法检查设备"}) == (
        "[设备检查] 无法完成: 当前检测模型没有设备类别, 无法检查设备"
    )
    with pytest.raises(ValueError, match="needs a detection"):
        render("人数检测", ORDER, None)


def test_a_report_is_classified_by_the_template_it_is_written_in():
    people = {"expected_workers": 12}
    assert report_outcome(render("人数检测", people, {"persons": 9})) == "people_absent"
    assert report_outcome(render("人数检测", {"expected_workers": 0}, {"persons": 3})) == "people_no_order"
    helmets = {"persons": 4, "with_helmet": 0, "without_helmet": 4, "unknown": 0}
    assert report_outcome(render("安全检查", ORDER, helmets)) == "helmets_some/helmets_none"  # one text for both
    assert report_outcome(render("人数检测", {"error": "未找到站点“火星”"}, None)) == "failed"
    assert report_outcome("[人数检测] 应到12人, 实到9人, 有人缺勤, 正常出工") is None
    assert report_outcome("您好") is None
    templates = load("reports")["outcomes"].values()
    every = {report_outcome(template.format_map(defaultdict(lambda: 17))) for template in templates}
    assert None not in every and len(every) == len(set(templates))


def test_a_report_gives_back_the_numbers_it_was_written_with():
    assert report_numbers(people(34)) == {"expected": 47, "persons": 34}
    helmets = {"persons": 5, "with_helmet": 3, "without_helmet": 0, "unknown": 2}
    assert report_numbers(render("安全检查", ORDER, helmets)) == {"persons": 5, "with_helmet": 3, "unknown": 2}
    assert report_numbers(render("设备检查", ORDER, {"persons": 0, "without_equipment": 0})) == {}
    assert report_numbers(render("人数检测", {"error": "未找到站点“火星”"}, None)) == {}
    assert report_numbers("[人数检测] 应到12人, 实到9人, 有人缺勤, 正常出工") == {}
