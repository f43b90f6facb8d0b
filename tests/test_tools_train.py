"""inspector train-detector on a tiny dataset the test draws: real ultralytics training, offline."""

import json
import random

import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from agent.cli import app
from agent.errors import UserError
from tools.detector_config import load_config
from tools.train_detector import Training, read_dataset, roles


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Eight 64×64 images per split: a red square (class hat) and a blue one (class person)."""
    root = tmp_path_factory.mktemp("shwd")
    rng = random.Random(0)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(8):
            image = Image.new("RGB", (64, 64), (200, 200, 200))
            draw, lines = ImageDraw.Draw(image), []
            for cls, colour in ((0, (220, 30, 30)), (1, (30, 30, 220))):
                x, y, size = rng.randint(0, 40), rng.randint(0, 40), rng.randint(12, 22)
                draw.rectangle((x, y, x + size, y + size), fill=colour)
                centre_x, centre_y, side = (x + size / 2) / 64, (y + size / 2) / 64, size / 64
                lines.append(f"{cls} {centre_x:.4f} {centre_y:.4f} {side:.4f} {side:.4f}")
            image.save(root / "images" / split / f"{i}.png")
            (root / "labels" / split / f"{i}.txt").write_text("\n".join(lines))
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames:\n  0: hat\n  1: person\n")
    return root / "data.yaml"


def test_training_writes_weights_and_a_detector_config_that_detects(dataset, tmp_path):
    out = tmp_path / "shwd-detector"
    arguments = ["--data", dataset, "--out", out, "--role", "hat=helmet", "--role", "person=no_helmet"]
    small = ["--model", "yolov8n.yaml", "--epochs", "1", "--image-size", "64", "--batch", "4"]
    result = CliRunner().invoke(app, ["train-detector", *map(str, arguments + small)])
    assert result.exit_code == 0, result.output
    names = sorted(path.name for path in out.iterdir())
    assert names == ["data.yaml", "detector.json", "run", "training.json", "weights.pt"]
    config = load_config(out / "detector.json")
    (spec,) = config.models
    assert (spec.weights, spec.classes, spec.image_size) == ("weights.pt", {"hat": "helmet", "person": "no_helmet"}, 64)
    training = Training.model_validate(json.loads((out / "training.json").read_text()))
    assert training.base == "yolov8n.yaml" and training.epochs == 1 and training.data == str(dataset.resolve())
    image = dataset.parent / "images" / "val" / "0.png"
    detected = CliRunner().invoke(app, ["detect", str(image), "--json", "--detector", str(out / "detector.json")])
    assert detected.exit_code == 0, detected.output
    (row,) = [json.loads(line) for line in detected.stdout.splitlines()]
    # One epoch teaches little, so the numbers are not the point; the shape is: no class of this dataset is a
    # whole person, so each head found is one person, judged either way, never unknown.
    assert list(row) == ["image", "persons", "with_helmet", "without_helmet", "unknown"]
    assert row["persons"] == row["with_helmet"] + row["without_helmet"] and row["unknown"] == 0


def test_roles_come_from_names_or_the_role_option():
    assert roles(["person", "helmet", "vest"], []) == {"person": "person", "helmet": "helmet"}
    assert roles(["hat", "person"], ["hat=helmet", "person=no_helmet"]) == {"hat": "helmet", "person": "no_helmet"}
    with pytest.raises(UserError, match="no class 'cap'; its classes are hat, person"):
        roles(["hat", "person"], ["cap=helmet"])
    with pytest.raises(UserError, match="'hardhat' is not a role"):
        roles(["hat"], ["hat=hardhat"])
    with pytest.raises(UserError, match="no class of the dataset has a role"):
        roles(["hat", "vest"], [])


def test_bad_datasets_are_one_line_errors(dataset, tmp_path):
    assert read_dataset(dataset).classes == ["hat", "person"]
    assert read_dataset(dataset).spec["path"] == str(dataset.parent)
    cases = [
        ("train: a\n", "needs train, val and names"),
        ("train: missing\nval: images/val\nnames: [a]\n", "the train images"),
        ("names: [a\n", "not valid YAML"),
    ]
    for text, message in cases:
        (dataset.parent / "bad.yaml").write_text(text)
        with pytest.raises(UserError, match=message):
            read_dataset(dataset.parent / "bad.yaml")
    with pytest.raises(UserError, match="cannot read dataset"):
        read_dataset(tmp_path / "none.yaml")
