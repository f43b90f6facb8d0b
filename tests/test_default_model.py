"""The default-model recipe, at toy size: it runs end to end, and twice gives bit-identical weights."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from agent.chatglm_format import read_dialogues
from agent.default_model import BUILD_FILE, RECIPE_FILE, RECOUNT_LOG, Recipe, build, practice_of
from agent.prompting import Prompting
from agent.session import DEFAULT_MODEL
from agent.stand_ins import STAND_INS, alphabet
from agent.tokenizer import GLMTokenizer
from agent.train_config import TrainConfig
from prompts import load

TOY = replace(Recipe(), data_size=40, merges=50, hidden=32, layers=1, heads=2, ffn=64, context=1024)
TOY = replace(TOY, batch_size=4, max_steps=3, eval_every=3, warmup_steps=1)
TOY = replace(TOY, recount_steps=2, recount_batch_size=6, recount_warmup_steps=1)


def same_weights(first: Path, second: Path) -> bool:
    """Whether two model folders hold bit-identical weights under the same names."""
    from safetensors.torch import load_file

    a, b = (load_file(model / "model.safetensors") for model in (first, second))
    return a.keys() == b.keys() and all((a[name] == b[name]).all() for name in a)


def test_build_is_deterministic(tmp_path):
    import torch

    first = build(tmp_path / "a" / "model", TOY, tmp_path / "a" / "work")
    second = build(tmp_path / "b" / "model", TOY, tmp_path / "b" / "work")
    assert same_weights(first, second)
    for name in ("config.json", "tokenizer.model", "train_config.json", "loss_curve.png", RECIPE_FILE, RECOUNT_LOG):
        assert (first / name).is_file(), name
    built = json.loads((first / BUILD_FILE).read_text(encoding="utf-8"))
    assert built["cpu"] and built["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert built["threads"] == TOY.threads and built["minutes"] >= 0
    decoding = {"span_bonus": TOY.span_bonus, "fresh_after_check": TOY.fresh_after_check}
    assert Prompting.of(first) == Prompting(tools_in_system=False, stand_ins=STAND_INS, **decoding)
    assert set(STAND_INS) <= GLMTokenizer.load(first).characters
    assert (first / "tokenizer.model").read_bytes() == (second / "tokenizer.model").read_bytes()
    alternates = read_dialogues(tmp_path / "a" / "work" / "data" / "recount_phase.jsonl")
    greeted = [d for d in alternates if d.conversations[-1].content == load("reports")["greeting"]]
    assert len(alternates) == TOY.recount_steps // 2 * (TOY.recount_batch_size + TOY.follow_ups)
    assert len(greeted) == TOY.recount_steps // 2 * TOY.follow_ups
    assert TrainConfig.load(tmp_path / "a" / "work" / "recount_phase").alternate_tails_only


def test_the_shipped_default_matches_its_recipe():
    if not (DEFAULT_MODEL / RECIPE_FILE).is_file():
        pytest.skip("models/default is not built")
    recorded = json.loads((DEFAULT_MODEL / RECIPE_FILE).read_text(encoding="utf-8"))
    assert recorded == Recipe().__dict__  # `inspector train default` rebuilds exactly this
    assert Prompting.of(DEFAULT_MODEL) == Prompting(False, STAND_INS, Recipe().span_bonus, Recipe().fresh_after_check)
    assert sum(f.stat().st_size for f in Path(DEFAULT_MODEL).iterdir()) < 30 * 2**20


def test_the_recipe_practices_its_stand_ins_and_name_swaps_on_the_tokenizers_ideographs(small_tokenizer):
    practice = practice_of(replace(Recipe(), stand_in_share=0.4, name_swaps=0.3), small_tokenizer)
    assert (practice.share, practice.most, practice.swaps) == (0.4, Recipe().stand_in_most, 0.3)
    assert practice.alphabet == alphabet(small_tokenizer) and "济" in practice.alphabet and "s" not in practice.alphabet


def test_the_recount_phase_can_train_only_the_top_layers(tmp_path):
    from safetensors.torch import load_file

    from agent.trainer import CHECKPOINT_DIR

    recipe = replace(TOY, layers=2, recount_layers=1)
    model = build(tmp_path / "model", recipe, tmp_path / "work")
    main = load_file(model / CHECKPOINT_DIR / "weights.safetensors")  # the main phase's last step
    final = load_file(model / "model.safetensors")
    assert main.keys() == final.keys()
    frozen = [name for name in main if name.startswith(("model.embed_tokens.", "model.layers.0."))]
    trained = [name for name in main if name.startswith(("model.layers.1.", "lm_head."))]
    assert frozen and all((main[name] == final[name]).all() for name in frozen)
    assert trained and all(not (main[name] == final[name]).all() for name in trained)


def test_the_recount_phase_can_learn_from_fresh_dialogues(tmp_path):
    build(tmp_path / "model", TOY, tmp_path / "work")  # the shipped recipe's fresh dialogues, at toy size
    data = tmp_path / "work" / "data"
    fresh = read_dialogues(data / "recount_fresh.jsonl")
    assert len(fresh) == (TOY.recount_steps + 1) // 2 * TOY.batch_size
    split = {json.dumps(dialogue.model_dump()["conversations"]) for dialogue in read_dialogues(data / "train.jsonl")}
    assert all(json.dumps(dialogue.model_dump()["conversations"]) not in split for dialogue in fresh)
    assert {dialogue.meta["split"] for dialogue in fresh} == {"train_more"}


def test_how_often_the_dev_split_is_scored_leaves_the_weights_as_they_are(tmp_path):
    recipe = replace(TOY, max_steps=4, eval_every=4)
    models = [
        build(tmp_path / str(every) / "model", replace(recipe, eval_every=every), tmp_path / str(every))
        for every in (4, 1)
    ]
    assert same_weights(*models)


def test_each_phase_trains_with_the_optimizer_its_recipe_names(tmp_path):
    from agent.trainer import CHECKPOINT_DIR

    recipe = replace(TOY, optimizer="muon", recount_optimizer="adamw")
    model = build(tmp_path / "muon" / "model", recipe, tmp_path / "muon" / "work")
    assert TrainConfig.load(model).optimizer == "muon"
    assert TrainConfig.load(tmp_path / "muon" / "work" / "recount_phase").optimizer == "adamw"
    main = torch_load(model / CHECKPOINT_DIR / "optimizer.pt")["optimizer"]
    assert len(main["parts"]) == 2  # Muon's and AdamW's states, saved for an exact resume
    adamw = build(tmp_path / "adamw" / "model", TOY, tmp_path / "adamw" / "work")
    assert not same_weights(model, adamw)


def torch_load(path: Path) -> dict:
    import torch

    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("layers", [3, -1])
def test_a_recipe_trains_only_layers_it_has(layers):
    with pytest.raises(ValueError, match="recount_layers must be 0 \\(all\\) to 2"):
        replace(TOY, layers=2, recount_layers=layers)
