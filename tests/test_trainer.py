"""Training on tiny models: loss goes down, P-tuning leaves the base untouched, resume is exact, save → reload."""

import json

import pytest

from agent.chatglm_format import IGNORE, Dialogue, Encoded, dialogue_messages, encode_training, parse_dialogue
from agent.examples import batch_order, load_examples, make_batch, shared_head
from agent.train_config import TrainConfig
from tests.glm_tiny import tiny_glm

torch = pytest.importorskip("torch")

TOOLS = [{"name": "count_people", "description": "统计人数", "parameters": {"site": "站点"}}]
SITES = ["济南", "青岛", "历城", "泰安", "烟台", "潍坊", "临沂", "德州"]


def dialogues(count: int, offset: int = 0) -> list[dict]:
    out = []
    for i in range(offset, offset + count):
        site = SITES[i % len(SITES)]
        persons = i % 7
        out.append(
            {
                "tools": TOOLS,
                "conversations": [
                    {"role": "user", "content": f"查查{site}人数"},
                    {
                        "role": "tool",
                        "name": "count_people",
                        "parameters": {"site": site},
                        "observation": {"persons": persons},
                    },
                    {"role": "assistant", "content": f"实到{persons}人"},
                ],
            }
        )
    return out


@pytest.fixture
def data_dir(tmp_path):
    for split, (count, offset) in {"train": (48, 0), "dev": (8, 100)}.items():
        lines = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in dialogues(count, offset))
        (tmp_path / f"{split}.jsonl").write_text(lines, encoding="utf-8")
    return tmp_path


def run(config, tokenizer, data_dir, model, **overrides):
    from agent.trainer import Trainer

    train = load_examples(data_dir / "train.jsonl", tokenizer, 2048)
    dev = load_examples(data_dir / "dev.jsonl", tokenizer, 2048)
    trainer = Trainer(config, model, tokenizer, train, dev, **overrides)
    return trainer


def config(tmp_path, method="full", **changes) -> TrainConfig:
    settings = dict(method=method, base="tiny", data="x", out=str(tmp_path / "out"), lr=3e-3, batch_size=4)
    settings |= dict(grad_accum=2, max_steps=12, eval_every=6, save_every=6, pre_seq_len=4, seed=1)
    return TrainConfig(**(settings | changes))


def test_shared_head_is_the_tools_message_and_carries_no_loss(small_tokenizer, data_dir):
    examples = load_examples(data_dir / "train.jsonl", small_tokenizer, 2048)
    head = shared_head(examples)
    text = small_tokenizer.decode(head)
    assert text.startswith("[gMASK]sop<|system|>") and text.endswith("<|user|>\n 查查")
    assert all(label == IGNORE for example in examples for label in example.labels[: len(head) + 1])


def test_batches_cover_each_example_once_per_epoch(small_tokenizer, data_dir):
    examples = load_examples(data_dir / "train.jsonl", small_tokenizer, 2048)
    order = batch_order(examples, 5, seed=3, epoch=0)
    assert sorted(i for batch in order for i in batch) == list(range(len(examples)))
    assert order == batch_order(examples, 5, seed=3, epoch=0) != batch_order(examples, 5, seed=3, epoch=1)
    batch = make_batch([examples[i] for i in order[0]], 10, small_tokenizer.pad_id)
    assert len({len(row) for row in batch.input_ids}) == 1 and batch.tokens > 0


def test_batches_group_by_length_unless_told_not_to():
    from agent.chatglm_format import Encoded

    # Lengths that follow the answer, as a head count's verdict's do: grouped batches would each hold one length.
    examples = [Encoded([1] * (10 + i % 2), [1] * (10 + i % 2)) for i in range(512)]
    grouped = batch_order(examples, 8, seed=0, epoch=0)
    plain = batch_order(examples, 8, seed=0, epoch=0, by_length=False)
    assert sorted(i for batch in plain for i in batch) == list(range(512))
    assert all(len({i % 2 for i in batch}) == 1 for batch in grouped)
    assert sum(len({i % 2 for i in batch}) == 2 for batch in plain) > 40


def test_alternate_examples_take_every_other_batch_in_batches_of_their_own(small_tokenizer, data_dir, tmp_path):
    cfg = config(tmp_path, alternate_batch_size=3)  # the training examples' batches hold 4
    model = tiny_glm(small_tokenizer.vocab_size)
    extra = load_examples(data_dir / "dev.jsonl", small_tokenizer, 2048)[:7]
    trainer = run(cfg, small_tokenizer, data_dir, model, alternate=extra)
    batches = trainer.batches(epoch=0)
    train = len(trainer.train)
    sources = [{i >= train for i in batch} for batch in batches]
    assert sources[:6] == [{False}, {True}] * 3 and all(s == {False} for s in sources[6:])  # 3 of 7, 12 of 48
    assert sorted(len(b) for b in batches[1:6:2]) == [1, 3, 3] and {len(b) for b in batches[::2]} == {4}
    assert sorted(i for batch in batches for i in batch) == list(range(train + 7))
    assert trainer.examples[train:] == extra and batches != trainer.batches(epoch=1)
    with pytest.raises(ValueError, match="alternate_batch_size"):
        run(config(tmp_path), small_tokenizer, data_dir, model, alternate=extra)


def test_batch_loss_equals_loss_without_the_shared_head(small_tokenizer, data_dir):
    from agent.trainer import batch_loss

    examples = load_examples(data_dir / "train.jsonl", small_tokenizer, 2048)[:3]
    model = tiny_glm(small_tokenizer.vocab_size)
    head = shared_head(examples)
    with torch.no_grad():
        split = batch_loss(model, head, make_batch(examples, len(head), small_tokenizer.pad_id))
        whole = batch_loss(model, [], make_batch(examples, 0, small_tokenizer.pad_id))
    assert float(split) == pytest.approx(float(whole), rel=1e-5)


def test_batch_loss_is_the_models_own_loss_over_the_labels(small_tokenizer, data_dir):
    from agent.trainer import batch_loss

    examples = load_examples(data_dir / "train.jsonl", small_tokenizer, 2048)[:3]
    model = tiny_glm(small_tokenizer.vocab_size)
    batch = make_batch(examples, 0, small_tokenizer.pad_id)
    labels = torch.tensor(batch.labels)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(batch.input_ids), attention_mask=torch.tensor(batch.mask)).logits
        full = torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE, reduction="sum"
        )
        assert float(batch_loss(model, [], batch)) == pytest.approx(float(full), rel=1e-5)


def answers_only(tokenizer, count: int) -> list[Encoded]:
    """Examples that learn only their last answer, as recounts do: the tool call is unlearned."""
    examples = []
    for dialogue in dialogues(count):
        dialogue["conversations"][1]["loss"] = False
        examples.append(encode_training(tokenizer, dialogue_messages(Dialogue.model_validate(dialogue))))
    return examples


@pytest.mark.parametrize("with_head", [True, False])
def test_tail_loss_is_the_batch_loss(small_tokenizer, with_head):
    from agent.trainer import batch_loss, tail_loss

    examples = answers_only(small_tokenizer, 5)
    examples[1] = Encoded(examples[1].input_ids + examples[0].input_ids[-3:], examples[1].labels + [IGNORE] * 3)
    model = tiny_glm(small_tokenizer.vocab_size)
    head = shared_head(examples) if with_head else []
    with torch.no_grad():
        whole = batch_loss(model, head, make_batch(examples, len(head), small_tokenizer.pad_id))
        tails = tail_loss(model, head, examples, small_tokenizer.pad_id)
    assert float(tails) == pytest.approx(float(whole), rel=1e-5)


def test_mean_loss_is_the_loss_per_learned_token_of_every_example(small_tokenizer, data_dir):
    from agent.trainer import batch_loss, mean_loss

    examples = load_examples(data_dir / "train.jsonl", small_tokenizer, 2048)
    examples[3] = Encoded(examples[3].input_ids * 2, examples[3].labels * 2)  # lengths differ: batched by length
    model = tiny_glm(small_tokenizer.vocab_size)
    head = shared_head(examples)
    batches = [make_batch([example], len(head), small_tokenizer.pad_id) for example in examples]
    with torch.no_grad():
        expected = sum(float(batch_loss(model, head, batch)) for batch in batches) / sum(b.tokens for b in batches)
    assert mean_loss(model, head, examples, small_tokenizer.pad_id, 5) == pytest.approx(expected, rel=1e-5)


def test_tail_loss_sends_no_gradient_into_the_context(small_tokenizer):
    from agent.trainer import batch_loss, tail_loss

    examples = answers_only(small_tokenizer, 4)
    head = shared_head(examples)
    site = small_tokenizer.encode("济南")[-1]  # in the user's words and the call, never in the answer
    gradients = []
    for loss in (
        lambda m: batch_loss(m, head, make_batch(examples, len(head), small_tokenizer.pad_id)),
        lambda m: tail_loss(m, head, examples, small_tokenizer.pad_id),
    ):
        model = tiny_glm(small_tokenizer.vocab_size)
        loss(model).backward()
        gradients.append(model.get_input_embeddings().weight.grad)
    assert gradients[0][site].abs().sum() > 0 and gradients[1][site].abs().sum() == 0
    answer = small_tokenizer.encode("实到")[-1]
    assert gradients[1][answer].abs().sum() > 0


def test_alternate_batches_learn_through_their_tails_when_asked(small_tokenizer, data_dir, tmp_path, monkeypatch):
    from agent import trainer as module

    real, calls = module.tail_loss, []

    def counted(model, head, examples, pad_id):
        calls.append(len(examples))
        return real(model, head, examples, pad_id)

    monkeypatch.setattr(module, "tail_loss", counted)
    extra = answers_only(small_tokenizer, 6)
    for tails_only in (False, True):
        cfg = config(tmp_path / str(tails_only), max_steps=4, alternate_batch_size=3, alternate_tails_only=tails_only)
        run(cfg, small_tokenizer, data_dir, tiny_glm(small_tokenizer.vocab_size), alternate=extra).run()
    assert calls == [3, 3]  # the 6 alternates make 2 batches of 3 in the first steps; only when asked


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_full_training_learns(small_tokenizer, data_dir, tmp_path, optimizer):
    from agent import train_log

    cfg = config(tmp_path, max_steps=30, eval_every=10, lr=1e-2, optimizer=optimizer)
    trainer = run(cfg, small_tokenizer, data_dir, tiny_glm(small_tokenizer.vocab_size, seed=0))
    trainer.run()
    records = train_log.read(tmp_path / "out")
    dev = [r["dev_loss"] for r in records if "dev_loss" in r]
    assert len(dev) == 3 and dev[-1] < dev[0] * 0.5
    assert (tmp_path / "out" / "loss_curve.png").stat().st_size > 1000
    assert TrainConfig.load(tmp_path / "out") == cfg


def test_ptuning_trains_only_the_prefix_and_learns(small_tokenizer, data_dir, tmp_path):
    from agent import train_log
    from agent.trainer import prepare_model

    cfg = config(tmp_path, method="ptuning", max_steps=20, eval_every=10, lr=5e-2, pre_seq_len=8)
    base = tiny_glm(small_tokenizer.vocab_size, seed=0)
    frozen = {name: p.detach().clone() for name, p in base.named_parameters()}
    model = prepare_model(cfg, base)
    trainer = run(cfg, small_tokenizer, data_dir, model)
    assert all(name.startswith("prompt_encoder") for name, p in model.named_parameters() if p.requires_grad)
    trainer.run()
    for name, parameter in model.get_base_model().named_parameters():
        assert torch.equal(parameter, frozen[name]), name
    dev = [r["dev_loss"] for r in train_log.read(tmp_path / "out") if "dev_loss" in r]
    assert dev[-1] < dev[0]


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resume_continues_exactly(small_tokenizer, data_dir, tmp_path, monkeypatch, optimizer):
    from agent.trainer import Trainer

    def config_of(path):
        return config(path, optimizer=optimizer)

    straight = run(config_of(tmp_path / "a"), small_tokenizer, data_dir, tiny_glm(small_tokenizer.vocab_size))
    straight.run()

    interrupted = run(config_of(tmp_path / "b"), small_tokenizer, data_dir, tiny_glm(small_tokenizer.vocab_size))
    original_step = Trainer._step

    def crash_at_step_8(self, group):
        if self.position.step == 8:
            raise KeyboardInterrupt
        return original_step(self, group)

    monkeypatch.setattr(Trainer, "_step", crash_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        interrupted.run()
    monkeypatch.setattr(Trainer, "_step", original_step)

    resumed = run(config_of(tmp_path / "b"), small_tokenizer, data_dir, tiny_glm(small_tokenizer.vocab_size, seed=5))
    assert resumed.resume() and resumed.position.step == 6
    resumed.run()
    for (name, a), (_, b) in zip(straight.model.named_parameters(), resumed.model.named_parameters(), strict=True):
        assert torch.equal(a, b), name


def test_save_and_reload_give_identical_logits(small_tokenizer, data_dir, tmp_path):
    from peft import PeftModel

    from agent.trainer import prepare_model

    cfg = config(tmp_path, method="ptuning", max_steps=2)
    model = prepare_model(cfg, tiny_glm(small_tokenizer.vocab_size, seed=0))
    trainer = run(cfg, small_tokenizer, data_dir, model)
    trainer.run()
    out = trainer.save_model()
    reloaded = PeftModel.from_pretrained(tiny_glm(small_tokenizer.vocab_size, seed=0), out).eval()
    example = encode_training(small_tokenizer, dialogue_messages(parse_dialogue(json.dumps(dialogues(1)[0]))))
    ids = torch.tensor([example.input_ids])
    with torch.no_grad():
        assert torch.equal(model.eval()(input_ids=ids).logits, reloaded(input_ids=ids).logits)
