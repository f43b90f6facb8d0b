"""The training optimizers: Muon on the decoder layers' matrices, AdamW on the rest, stepped and saved as one."""

import pytest

from agent.errors import ConfigError
from agent.train_config import TrainConfig
from agent.trainer import trainable as named
from tests.glm_tiny import tiny_glm

torch = pytest.importorskip("torch")


def step(model, optimizer, scheduler=None, seed=0):
    torch.manual_seed(seed)
    ids = torch.randint(3, 50, (2, 12))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    if scheduler:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def test_muon_steps_the_layers_matrices_and_adamw_the_rest():
    from agent.optimizer import make_optimizer

    model = tiny_glm(64)
    optimizer = make_optimizer(named(model), "muon", 1e-3, 0.01)
    muon, adamw = optimizer.parts
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    by_id = {id(p): name for name, p in model.named_parameters()}
    stepped = {by_id[id(p)] for p in muon.param_groups[0]["params"]}
    assert "model.layers.0.self_attn.q_proj.weight" in stepped and "model.layers.1.mlp.down_proj.weight" in stepped
    rest = {by_id[id(p)] for p in adamw.param_groups[0]["params"]}
    assert {"model.embed_tokens.weight", "lm_head.weight", "model.layers.0.self_attn.q_proj.bias"} <= rest
    assert all(not name.endswith("norm.weight") for name in stepped)
    assert stepped | rest == set(by_id.values()) and not stepped & rest


class Both:
    """Two optimizers stepped by hand, one after the other."""

    def __init__(self, *parts):
        self.parts = parts

    def step(self):
        for part in self.parts:
            part.step()

    def zero_grad(self, set_to_none):
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)


def test_the_combined_optimizer_is_its_parts_stepped_alone():
    from agent.optimizer import is_layer_matrix, make_optimizer

    together, apart = tiny_glm(64), tiny_glm(64)
    combined = make_optimizer(named(together), "muon", 1e-2, 0.01)
    matrices = [p for name, p in apart.named_parameters() if is_layer_matrix(name, p)]
    rest = [p for name, p in apart.named_parameters() if not is_layer_matrix(name, p)]
    muon = torch.optim.Muon(matrices, lr=1e-2, weight_decay=0.01, adjust_lr_fn="match_rms_adamw")
    adamw = torch.optim.AdamW(rest, lr=1e-2, weight_decay=0.01)
    for seed in range(3):
        step(together, combined, seed=seed)
        step(apart, Both(muon, adamw), seed=seed)
    pairs = zip(together.named_parameters(), apart.named_parameters(), strict=True)
    for (name, a), (_, b) in pairs:
        assert torch.equal(a, b), name
    assert not torch.equal(
        together.model.layers[0].mlp.down_proj.weight, tiny_glm(64).model.layers[0].mlp.down_proj.weight
    )


def test_a_schedule_reaches_every_part_and_a_saved_state_continues_exactly():
    from agent.optimizer import make_optimizer

    def made(model):
        optimizer = make_optimizer(named(model), "muon", 1e-2, 0.01)
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 / (s + 1))

    straight = tiny_glm(64)
    optimizer, scheduler = made(straight)
    for seed in range(4):
        step(straight, optimizer, scheduler, seed)
    assert [part.param_groups[0]["lr"] for part in optimizer.parts] == [1e-2 / 5] * 2

    halted = tiny_glm(64)
    first, first_schedule = made(halted)
    for seed in range(2):
        step(halted, first, first_schedule, seed)
    saved = {"optimizer": first.state_dict(), "scheduler": first_schedule.state_dict()}
    resumed = tiny_glm(64)
    resumed.load_state_dict(halted.state_dict())
    second, second_schedule = made(resumed)
    second.load_state_dict(saved["optimizer"])
    second_schedule.load_state_dict(saved["scheduler"])
    for seed in range(2, 4):
        step(resumed, second, second_schedule, seed)
    for (name, a), (_, b) in zip(straight.named_parameters(), resumed.named_parameters(), strict=True):
        assert torch.equal(a, b), name


def test_adamw_is_one_adamw_over_every_parameter_in_order():
    from agent.optimizer import make_optimizer

    model = tiny_glm(64)
    optimizer = make_optimizer(named(model), "adamw", 1e-3, 0.01)
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.param_groups[0]["params"] == list(model.parameters())


def test_an_unknown_optimizer_is_a_config_error():
    with pytest.raises(ConfigError, match="optimizer must be adamw or muon"):
        TrainConfig(method="full", base="b", data="d", out="o", optimizer="sgd")  # type: ignore[arg-type]
