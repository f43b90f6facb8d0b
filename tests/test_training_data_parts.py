"""The generator's parts: vocabularies, decks, noise, site names, dates, observation numbers."""

import random
from collections import Counter
from datetime import date

import pytest

from agent.reports import CHECKS, outcome
from prompts import load as load_prompts
from tests.conftest import SHARED
from training_data import load
from training_data.dates import say, say_impossible
from training_data.deck import Deck
from training_data.dialogues import outcomes_of
from training_data.noise import add_noise
from training_data.observations import counts, query_failure, work_order
from training_data.sites import Site, SitePool, gazetteer, is_held_out_stem, name_kind, place_words
from training_data.templates import CHECK_SLOTS, FAMILIES, Piece, check_words, fill, templates, text

SEED_NOTES = SHARED / "seeds" / "003_ec0d5a2c67a6e160.txt"
SEED_GREETINGS = ["你好", "您好", "早上好", "中午好", "晚上好", "好久不见", "你是谁", "你叫什么名字", "自我介绍下",
                  "简单自我介绍下", "你能做什么", "你的用途"]  # fmt: skip
SEED_REQUESTS = [  # the seed's twelve request phrasings with 济南 for %s, four per check
    "请尝试查看济南的工地的人数情况", "输出工地济南人数情况", "尝试查济南的人数", "查查在济南工地人数嘛",
    "开始检查济南的安全状况", "试试看输出济南携带安全帽的情况", "进行在济南的安全帽检测工作",
    "检测在济南的安全帽佩戴情况啊", "检测在济南的电笔配备情况", "检查济南有没有设备异常",
    "请输出济南工地的设备检查结果", "告诉我济南配备电笔检查结果",
]  # fmt: skip
SLOTS = {
    "greeting": set(),
    "request": {"site", "date"},
    "no_site": {"date"},
    "no_check": {"site", "date"},
    "vague": set(),
    "site_answer": {"site"},
    "check_answer": set(),
}


def test_the_seed_templates_are_the_ones_quoted_here():
    if not SEED_NOTES.is_file():
        pytest.skip(f"the seed notes are not at {SEED_NOTES}")
    notes = SEED_NOTES.read_text(encoding="utf-8")
    assert all(f'"{greeting}"' in notes for greeting in SEED_GREETINGS)
    assert all(f'"{request.replace("济南", "%s")}"' in notes for request in SEED_REQUESTS)


def test_greetings_include_the_seed_and_are_many():
    seen = [template.frame for template in templates("greeting", held_out=False)]
    assert set(SEED_GREETINGS) <= set(seen)
    assert len(seen) + len(templates("greeting", held_out=True)) >= 25


def test_frames_have_exactly_their_slots():
    for family in FAMILIES:
        for held_out in (False, True):
            for template in templates(family, held_out=held_out):
                slots = Counter(template.slots)
                assert all(count == 1 for count in slots.values()), template
                checks = set(slots) & set(CHECK_SLOTS)
                assert set(slots) - checks == SLOTS[family], template
                named = family in ("request", "no_site", "check_answer")
                assert len(checks) == (1 if named else 0), template


def test_seen_and_held_out_never_overlap():
    for family in FAMILIES:
        seen = {template.frame for template in templates(family, held_out=False)}
        held_out = {template.frame for template in templates(family, held_out=True)}
        assert seen and held_out and not seen & held_out, family
    assert not set(gazetteer(held_out=False)) & set(gazetteer(held_out=True))


def phrasings() -> dict[str, set[str]]:
    """Every request the seen frames can say about 济南 without a date, with the checks it can mean."""
    said: dict[str, set[str]] = {}
    for template in templates("request", held_out=False):
        [slot] = set(template.slots) & set(CHECK_SLOTS)
        for check in CHECKS:
            for word in check_words(check, slot):
                for place in place_words("济南"):
                    site = (Piece("site", "济南"), Piece("frame", place))
                    utterance = fill(template, {"site": site, "date": (), slot: (Piece("check", word),)})
                    said.setdefault(text(utterance), set()).add(check)
    return said


def test_requests_grow_out_of_the_seed_and_each_means_one_check():
    said = phrasings()
    for index, request in enumerate(SEED_REQUESTS):
        assert said[request] == {CHECKS[index // 4]}, request
    assert all(len(checks) == 1 for checks in said.values())
    per_check = Counter(next(iter(checks)) for checks in said.values())
    assert all(per_check[check] >= 80 for check in CHECKS)


def test_check_words_name_one_check_each():
    words = [word for check in CHECKS for slot in CHECK_SLOTS for word in check_words(check, slot)]
    assert len(words) == len(set(words))


def test_a_deck_deals_every_card_once_per_round():
    deck = Deck(random.Random(0), "abcde")
    for _ in range(3):
        assert sorted(deck.draw() for _ in range(5)) == list("abcde")
    with pytest.raises(ValueError, match="at least one card"):
        Deck(random.Random(0), [])


UTTERANCE = (
    Piece("frame", "帮我查一下"),
    Piece("date", "2024年5月3日"),
    Piece("site", "历城220kV变电站"),
    Piece("frame", "的"),
    Piece("check", "安全帽"),
    Piece("frame", "情况"),
)


def test_noise_ops_replay_to_what_was_heard():
    rng = random.Random(1)
    clean = text(UTTERANCE)
    spans = Counter()
    for _ in range(3000):
        heard, ops = add_noise(rng, UTTERANCE, "high")
        chars = list(clean)
        for op in ops:
            assert chars[op["pos"]] == op["old"] and op["old"] != op["new"]
            chars[op["pos"]] = op["new"]
            spans[op["span"]] += 1
        assert "".join(chars) == text(heard)
        assert [p.span for p in heard if p.span != "frame"] == [p.span for p in UTTERANCE if p.span != "frame"]
        assert sum(op["span"] == "site" for op in ops) <= 1 and sum(op["span"] == "date" for op in ops) <= 1
        assert all(op["op"] == "homophone" for op in ops if op["span"] == "check")
        assert all(not op["old"].isdigit() for op in ops if op["span"] == "date")
    assert spans["frame"] > 3 * (spans["site"] + spans["date"]) > 0
    assert add_noise(rng, UTTERANCE, "none") == (UTTERANCE, [])


def test_noise_levels_set_the_number_of_ops():
    rng = random.Random(2)
    low = [len(add_noise(rng, UTTERANCE, "low")[1]) for _ in range(300)]
    high = [len(add_noise(rng, UTTERANCE, "high")[1]) for _ in range(300)]
    assert max(low) == 1 and min(high) >= 1 and sum(high) > 2 * sum(low)


def test_canonical_names_and_place_words():
    assert Site("济南", "gazetteer").canonical == "济南工地"
    assert Site("历城区", "gazetteer").canonical == "历城区工地"
    assert Site("历城220kV变电站", "gazetteer").canonical == "历城220kV变电站"
    assert Site("济青线12号塔段", "gazetteer").canonical == "济青线12号塔段"
    assert [name_kind(name) for name in ("济南", "章丘区", "明湖台区", "港沟供电所")] == [
        "bare", "area", "facility", "facility"
    ]  # fmt: skip
    assert place_words("历城220kV变电站") == [""]
    assert "站" in place_words("济南") and "站" not in place_words("章丘区")


def stem_of(name: str, held_out: bool) -> str:
    """A bare composed name without the split's city it may start with (济南历下 -> 历下)."""
    places = [place for place in gazetteer(held_out=held_out) if name_kind(place) == "bare"]
    return next((name[len(place) :] for place in places if name.startswith(place)), name)


def test_site_pools_never_share_a_name():
    taken: set[str] = set()
    rng = random.Random(3)
    pools = {held_out: SitePool(rng, held_out=held_out, taken=taken) for held_out in (False, True)}
    drawn = {held_out: [pool.draw() for _ in range(3000)] for held_out, pool in pools.items()}
    names = {held_out: {site.name for site in sites} for held_out, sites in drawn.items()}
    assert not names[False] & names[True]
    for held_out, sites in drawn.items():
        composed = [site.name for site in sites if site.source == "composed"]
        assert len(composed) == len(set(composed)) > 0.7 * len(sites)
        assert {site.name for site in sites if site.source == "gazetteer"} <= set(gazetteer(held_out=held_out))
        bare = [site.name for site in sites if site.source == "composed" and name_kind(site.name) == "bare"]
        stems = [stem_of(name, held_out) for name in bare]
        assert 0.1 * len(bare) < sum(map(str.__ne__, stems, bare)) < 0.5 * len(bare), "济南历下: a city first"
        assert stems and all(is_held_out_stem(stem) == held_out for stem in stems)


def test_dates_are_said_in_the_accepted_forms():
    rng = random.Random(4)
    today = date(2024, 3, 1)
    said = [say(rng, today) for _ in range(700)]
    assert {d.text for d in said} >= {"今天", "昨天", "前天"}
    assert all(d.day is not None and (today - d.day).days in range(60) for d in said)
    forms = Counter(d.text[-1] if not d.text[-1].isdigit() else "-" for d in said)
    assert set(forms) == {"天", "日", "号", "-"}
    impossible = [say_impossible(rng, today) for _ in range(100)]
    assert all(d.day is None for d in impossible)
    for d in impossible:
        numbers = [int(part) for part in d.text.replace("年", "-").replace("月", "-").rstrip("日号").split("-")]
        month, day = numbers[-2:]
        with pytest.raises(ValueError):
            date(today.year, month, day)


@pytest.mark.parametrize("check", CHECKS)
def test_numbers_drawn_for_an_outcome_give_that_outcome(check):
    rng = random.Random(5)
    for wanted in outcomes_of(check):
        for _ in range(300):
            expected, numbers = counts(rng, wanted)
            order = work_order(rng, "济南工地", date(2024, 5, 3), check, expected)
            assert outcome(check, order, {"image": "x.jpg", **numbers}) == wanted
            assert all(0 <= value <= 60 for value in [expected, *numbers.values()])
    with pytest.raises(ValueError, match="no numbers"):
        counts(rng, "no_such_outcome")


def test_small_crews_and_close_counts_are_common():
    rng = random.Random(6)
    drawn = [counts(rng, outcome) for outcome in ("people_absent", "people_excess") for _ in range(500)]
    small = sum(expected <= 9 for expected, _ in drawn) / len(drawn)
    close = sum(abs(numbers["persons"] - expected) <= 3 for expected, numbers in drawn) / len(drawn)
    assert 0.35 < small < 0.55 and 0.5 < close < 0.8


def test_work_orders_issue_equipment_as_the_database_does():
    rng = random.Random(3)
    issued = {
        check: Counter(bool(work_order(rng, "济南工地", date(2024, 5, 3), check, 5)["equipment"]) for _ in range(400))
        for check in CHECKS
    }
    assert issued["设备检查"] == Counter({True: 400})
    assert all(150 < issued[check][False] < 250 for check in ("人数检测", "安全检查"))
    assert work_order(rng, "济南工地", date(2024, 5, 3), "人数检测", 0)["equipment"] == []


def test_an_ambiguous_site_lists_sorted_names_around_the_one_heard():
    rng = random.Random(4)
    listed = [
        query_failure(rng, "ambiguous_site", site="青岛市", date=None, canonical="青岛市工地")["error"].split(": ")[1]
        for _ in range(200)
    ]
    pairs = [names.split("、") for names in listed]
    assert all(len(set(pair)) == 2 and pair == sorted(pair) for pair in pairs)
    assert all(name.startswith("青岛市") for pair in pairs for name in pair)
    phases = sum(all(name.startswith("青岛市工地") for name in pair) for pair in pairs)
    assert 60 < phases < 140


def test_every_report_outcome_belongs_to_one_check():
    assert sorted(o for check in CHECKS for o in outcomes_of(check)) == sorted(load_prompts("reports")["outcomes"])


def test_the_training_pool_lengthens_stems_from_a_generator_of_its_own():
    def bare_names(lengthen: random.Random | None) -> list[str]:
        pool = SitePool(random.Random(5), held_out=False, taken=set(), lengthen=lengthen)
        sites = [pool.draw() for _ in range(3000)]
        bare = [site.name for site in sites if site.source == "composed" and name_kind(site.name) == "bare"]
        return [stem_of(name, held_out=False) for name in bare]

    plain, longer = bare_names(None), bare_names(random.Random(1))
    assert set(Counter(map(len, plain))) == {2, 3}
    lengths = Counter(map(len, longer))
    assert min(lengths[2], lengths[4]) > 0.15 * len(longer) and lengths[3] > 0.3 * len(longer)
    pool_chars = set(load("sites")["compose"]["stem_chars"])
    assert all(set(stem) <= pool_chars and not is_held_out_stem(stem) for stem in longer)
