import pytest

from tools.batch import detect_all, expand
from tools.scene import Box, people


def box(role, x1, y1, x2, y2, confidence=0.9, label=None):
    return Box(role, label or role, confidence, x1, y1, x2, y2)


def test_heads_belong_to_the_person_holding_them_in_their_upper_half():
    left = box("person", 0, 0, 100, 300)
    right = box("person", 60, 0, 200, 300)
    heads = [box("no_helmet", 30, 10, 70, 50), box("helmet", 110, 10, 150, 50)]
    found = people([left, right, *heads], persons_from_heads=False)
    assert [(p.box, p.helmet, p.head) for p in found] == [(left, "no_helmet", heads[0]), (right, "helmet", heads[1])]


def test_overlapping_people_get_the_horizontally_closest_head():
    behind = box("person", 0, 0, 200, 400)
    front = box("person", 80, 10, 160, 400)
    head = box("helmet", 100, 20, 140, 60)
    found = people([behind, front, head], persons_from_heads=False)
    assert [p.helmet for p in found] == ["unknown", "helmet"]


def test_unjudged_people_are_unknown_never_counted_either_way():
    person = box("person", 0, 0, 100, 300)
    low = box("no_helmet", 30, 200, 70, 240)  # in the lower half: a hand, a bag, not this person's head
    undecided = box("head", 30, 10, 70, 50)
    assert people([person, low], persons_from_heads=False)[0].helmet == "unknown"
    assert people([person, undecided], persons_from_heads=False)[0].helmet == "unknown"
    assert people([low], persons_from_heads=False) == []


def test_a_person_keeps_the_most_confident_of_two_heads():
    person = box("person", 0, 0, 100, 300)
    heads = [box("no_helmet", 30, 10, 70, 50, 0.4), box("helmet", 32, 12, 72, 52, 0.8)]
    assert people([person, *heads], persons_from_heads=False)[0].helmet == "helmet"


def test_without_a_person_class_every_head_is_a_person():
    heads = [box("helmet", 0, 0, 10, 10), box("no_helmet", 20, 0, 30, 10), box("head", 40, 0, 50, 10)]
    found = people([*heads, box("equipment", 2, 2, 8, 8)], persons_from_heads=True)
    assert [p.helmet for p in found] == ["helmet", "no_helmet", "unknown"]
    assert [len(p.equipment) for p in found] == [1, 0, 0]


def test_equipment_belongs_to_the_person_holding_it():
    a, b = box("person", 0, 0, 100, 300), box("person", 150, 0, 250, 300)
    tester = box("equipment", 40, 150, 60, 200, label="tester")
    gloves = box("equipment", 160, 250, 190, 280, label="gloves")
    stray = box("equipment", 120, 150, 130, 160, label="lost")
    found = people([a, b, tester, gloves, stray], persons_from_heads=False)
    assert [[item.label for item in p.equipment] for p in found] == [["tester"], ["gloves"]]


class CountingDetector:
    """Records batch sizes; 'sees' as many people as the red value of the image's first pixel."""

    persons_from_heads = False

    def __init__(self):
        self.batches = []

    def detect(self, images):
        self.batches.append(len(images))
        return [[box("person", 0, 0, 1, 1)] * int(image[0, 0, 2]) for image in images]


def test_batches_are_bounded_and_bad_items_keep_their_place(tmp_path):
    from PIL import Image

    paths = []
    for i in range(7):
        path = tmp_path / "in" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), (i, 0, 0)).save(path)
        paths.append(path)
    (tmp_path / "in" / "3.png").write_text("broken")
    (tmp_path / "empty").mkdir()
    inputs = expand([tmp_path / "in", tmp_path / "empty", tmp_path / "missing.jpg"])
    assert inputs == [*paths, tmp_path / "empty", tmp_path / "missing.jpg"]
    detector = CountingDetector()
    outcomes = list(detect_all(inputs, detector, batch_size=3))
    assert detector.batches == [3, 3]
    assert [o.path for o in outcomes] == inputs
    assert [len(o.people) if o.people is not None else "x" for o in outcomes] == [0, 1, 2, "x", 4, 5, 6, "x", "x"]
    assert "not an image file" in str(outcomes[3].error)
    assert "a folder without images" in str(outcomes[7].error)
    assert "no such file" in str(outcomes[8].error)


def test_legacy_area_attention_computes_the_original_yolov12_attention():
    from agent.torch_compat import ensure_torchvision

    ensure_torchvision()
    import torch
    from ultralytics.nn.modules import Conv
    from ultralytics.nn.modules.block import AAttn

    from tools.area_attention import adapt

    torch.manual_seed(0)
    for area in (1, 4):
        module = AAttn(64, num_heads=2, area=area)
        del module.qkv
        module.qk, module.v = Conv(64, 128, 1, act=False), Conv(64, 64, 1, act=False)
        module.pe = Conv(64, 64, 5, 1, 2, g=64, act=False)
        module.eval()
        x = torch.randn(2, 64, 8, 6)
        with torch.no_grad():
            # The original computation, spelled out: each of `area` row stripes of the feature map, each head,
            # softmax(q·k / sqrt(d)) weighting v, plus a depth-wise convolution of v, then the projection.
            q, k = module.qk(x).split(64, dim=1)
            v = module.v(x)
            expected = torch.zeros_like(v)
            stripe = 8 // area
            for b in range(2):
                for s in range(area):
                    rows = slice(s * stripe, (s + 1) * stripe)
                    for h in range(2):
                        ch = slice(h * 32, (h + 1) * 32)
                        qs, ks, vs = (t[b, ch, rows].reshape(32, -1) for t in (q, k, v))
                        weights = torch.softmax(qs.T @ ks / 32**0.5, dim=-1)
                        expected[b, ch, rows] = (vs @ weights.T).reshape(32, stripe, 6)
            expected = module.proj(expected + module.pe(v))
            assert adapt(torch.nn.Sequential(module)) == 1
            assert torch.allclose(module(x), expected, atol=1e-5)


@pytest.mark.parametrize("persons_from_heads", [False, True])
def test_no_boxes_no_people(persons_from_heads):
    assert people([], persons_from_heads) == []
