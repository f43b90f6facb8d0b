"""Cached, batched greedy generation agrees with a naive full-recompute loop, with and without a prefix."""

import pytest

from agent.chatglm_format import Message, encode_prompt, tools_message
from agent.errors import UserError
from tests.glm_tiny import tiny_glm

torch = pytest.importorskip("torch")

SYSTEM = tools_message([{"name": "count_people", "description": "统计人数", "parameters": {}}])
REQUESTS = ["查查在济南工地人数嘛", "你好", "请检查历城220kV变电站今天的安全帽佩戴情况, 谢谢"]


def naive_greedy(base, tokenizer, prompt, max_new, prefix_kv=None):
    """Recompute the whole sequence for every token; positions start at 0 after the virtual prefix."""
    from transformers import DynamicCache

    ids = list(prompt)
    out = []
    for _ in range(max_new):
        past = DynamicCache(ddp_cache_data=prefix_kv) if prefix_kv else None
        virtual = prefix_kv[0][0].shape[2] if prefix_kv else 0
        logits = base(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, virtual + len(ids), dtype=torch.long),
            position_ids=torch.arange(len(ids))[None],
            past_key_values=past,
        ).logits[0, -1, : tokenizer.vocab_size]
        token = int(logits.argmax())
        if token in tokenizer.stop_ids:
            break
        out.append(token)
        ids.append(token)
    return out


def conversations():
    return [[SYSTEM, Message("user", text)] for text in REQUESTS]


def test_batched_cached_generation_matches_naive(chatglm3_tokenizer):
    from agent.glm_backend import GLMBackend

    model = tiny_glm(chatglm3_tokenizer.vocab_size)
    backend = GLMBackend(model, chatglm3_tokenizer)
    generations = backend.generate(conversations(), max_new_tokens=10)
    for messages, generation in zip(conversations(), generations, strict=True):
        prompt = encode_prompt(chatglm3_tokenizer, messages)
        with torch.no_grad():
            assert generation.token_ids == naive_greedy(model, chatglm3_tokenizer, prompt, 10)
        assert generation.prompt_tokens == len(prompt)
        assert generation.text == chatglm3_tokenizer.decode(generation.token_ids)
    # A second call reuses the cached system message and gives the same answers one by one.
    alone = [backend.generate([c], max_new_tokens=10)[0].token_ids for c in conversations()]
    assert alone == [g.token_ids for g in generations]


def test_prefix_tuning_generation_matches_naive(chatglm3_tokenizer):
    from peft import PrefixTuningConfig, get_peft_model

    from agent.glm_backend import GLMBackend

    model = get_peft_model(
        tiny_glm(chatglm3_tokenizer.vocab_size), PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=6)
    )
    with torch.no_grad():
        for parameter in model.prompt_encoder.parameters():
            parameter.normal_(std=1.0)
    backend = GLMBackend(model, chatglm3_tokenizer)
    assert backend.virtual_tokens == 6
    generations = backend.generate(conversations(), max_new_tokens=8)
    prefix = [(k, v) for k, v in backend._virtual]
    for messages, generation in zip(conversations(), generations, strict=True):
        prompt = encode_prompt(chatglm3_tokenizer, messages)
        with torch.no_grad():
            expected = naive_greedy(model.get_base_model(), chatglm3_tokenizer, prompt, 8, prefix)
        assert generation.token_ids == expected


def test_stops_and_length_bound(chatglm3_tokenizer):
    from agent.glm_backend import GLMBackend

    backend = GLMBackend(tiny_glm(chatglm3_tokenizer.vocab_size), chatglm3_tokenizer)
    [generation] = backend.generate([[Message("user", "你好")]], max_new_tokens=3)
    assert len(generation.token_ids) <= 3
    assert generation.stop in {"eos", "user", "observation", "length"}
    assert generation.prefill_s > 0 and generation.decode_s >= 0


def test_too_long_conversation_is_a_clear_error(chatglm3_tokenizer):
    from agent.glm_backend import GLMBackend

    backend = GLMBackend(tiny_glm(chatglm3_tokenizer.vocab_size, context=64), chatglm3_tokenizer)
    with pytest.raises(UserError, match="more than the model's context of 64"):
        backend.generate([[Message("user", "很长的输入" * 30)]], max_new_tokens=8)


def test_masks_are_made_once_per_allowed_list_and_row():
    from agent.glm_backend import Masks

    torch = pytest.importorskip("torch")
    masks = Masks(torch.zeros(2, 6))
    allowed = [1, 4]
    mask = masks.of(0, allowed)
    assert mask.tolist() == [float("-inf"), 0.0, float("-inf"), float("-inf"), 0.0, float("-inf")]
    assert masks.of(0, allowed) is mask
    assert masks.of(1, [3]) is not mask and masks.of(0, allowed) is mask  # rows keep their own
    assert masks.of(0, [1, 4]) is not mask and masks.of(0, [1, 4]).equal(mask)
    logits = torch.arange(6.0) + masks.of(1, [2])
    assert int(logits.argmax()) == 2 and logits.isinf().sum() == 5
