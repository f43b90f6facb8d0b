"""The GLM backend: greedy, cached, batched generation with transformers' native `GlmForCausalLM`.

Two things are computed once and reused by every call, because every prompt of the agent starts with
them: the P-tuning v2 prefix (virtual key/values, when an adapter is loaded) and the system message that
offers the tools. A call then only runs the rest of each prompt, left-padded into one batch, and decodes
with the KV cache until a stop token.

Positions follow ChatGLM3's P-tuning v2: virtual prefix tokens take no position; the first real token
is position 0, whatever the padding.
"""

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import kv
from agent.backend import Generation, ModelBackend, StopReason
from agent.chatglm_format import Message, encode_message, encode_prompt
from agent.errors import UserError
from agent.tokenizer import GLMTokenizer
from agent.torch_compat import ensure_torchvision

if TYPE_CHECKING:
    from agent.loading import LoadOptions


class GLMBackend(ModelBackend):
    """Generate with a `GlmForCausalLM`, optionally wrapped by a peft prefix-tuning adapter."""

    def __init__(self, model: Any, tokenizer: GLMTokenizer) -> None:
        import torch

        ensure_torchvision()  # transformers' lazy imports touch torchvision

        self.tokenizer = tokenizer
        self.model = model.eval()
        self.base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.device = next(self.base.parameters()).device
        self.context = int(self.base.config.max_position_embeddings)
        self._torch = torch
        with torch.no_grad():
            self._virtual = kv.virtual(model)
        self._head_ids: tuple[int, ...] = ()
        self._head_kv: kv.KV = self._virtual

    @classmethod
    def load(cls, model_dir: Path, options: "LoadOptions") -> "GLMBackend":
        """The model and tokenizer of a model folder, loaded as `options` say."""
        from agent.loading import load_model

        tokenizer = GLMTokenizer.load(model_dir)
        return cls(load_model(model_dir, options), tokenizer)

    @property
    def virtual_tokens(self) -> int:
        return kv.length(self._virtual)

    def generate(self, conversations: list[list[Message]], max_new_tokens: int = 128) -> list[Generation]:
        with self._torch.inference_mode():
            return self._generate(conversations, max_new_tokens)

    def _generate(self, conversations: list[list[Message]], max_new_tokens: int) -> list[Generation]:
        torch = self._torch
        prompts = [encode_prompt(self.tokenizer, messages) for messages in conversations]
        for prompt in prompts:
            if len(prompt) + max_new_tokens > self.context:
                raise UserError(
                    f"the conversation needs {len(prompt)} + {max_new_tokens} tokens, more than the model's "
                    f"context of {self.context}; shorten the input or the history"
                )
        head = self._shared_head(conversations)
        started = time.perf_counter()
        past_kv = self._kv_for_head(head)
        rests = [prompt[len(head) :] for prompt in prompts]
        width = max(map(len, rests))
        batch = len(rests)
        pad = self.tokenizer.pad_id
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rests], device=self.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rests], device=self.device)
        positions = (len(head) + mask.cumsum(-1) - 1).clamp(min=0)
        attention = torch.cat([mask.new_ones(batch, kv.length(past_kv)), mask], dim=1)
        output = self.base(
            input_ids=ids,
            attention_mask=attention,
            position_ids=positions,
            past_key_values=kv.cache(past_kv, batch),
            use_cache=True,
        )
        prefilled = time.perf_counter()
        tokens: list[list[int]] = [[] for _ in rests]
        stops: list[StopReason | None] = [None] * batch
        cache = output.past_key_values
        logits = output.logits[:, -1]
        position = positions[:, -1:]
        for step in range(max_new_tokens):
            chosen = self._greedy(logits)
            for row, token in enumerate(chosen.tolist()):
                if stops[row] is None:
                    stop = self._stop_reason(token)
                    stops[row] = stop
                    if stop is None:
                        tokens[row].append(token)
            if all(stops) or step == max_new_tokens - 1:
                break
            attention = torch.cat([attention, attention.new_ones(batch, 1)], dim=1)
            position = position + 1
            output = self.base(
                input_ids=chosen[:, None],
                attention_mask=attention,
                position_ids=position,
                past_key_values=cache,
                use_cache=True,
            )
            cache, logits = output.past_key_values, output.logits[:, -1]
        finished = time.perf_counter()
        return [
            Generation(
                text=self.tokenizer.decode(row_tokens),
                token_ids=row_tokens,
                prompt_tokens=len(prompt),
                stop=stop or "length",
                prefill_s=(prefilled - started) / batch,
                decode_s=(finished - prefilled) / batch,
            )
            for row_tokens, prompt, stop in zip(tokens, prompts, stops, strict=True)
        ]

    def _greedy(self, logits: Any) -> Any:
        """The most likely real token; rows of a padded embedding beyond the tokenizer never win."""
        return logits[:, : self.tokenizer.vocab_size].argmax(-1)

    def _stop_reason(self, token: int) -> StopReason | None:
        tok = self.tokenizer
        return {tok.eos_id: "eos", tok.role("user"): "user", tok.role("observation"): "observation"}.get(token)

    def _shared_head(self, conversations: list[list[Message]]) -> list[int]:
        """Prefix + the leading system message, when every conversation starts with the same one."""
        firsts = {messages[0] for messages in conversations if messages}
        if len(firsts) != 1 or len(conversations[0]) < 2:
            return []
        [first] = firsts
        if first.role != "system" or any(len(messages) < 2 for messages in conversations):
            return []
        return self.tokenizer.prefix + encode_message(self.tokenizer, first)

    def _kv_for_head(self, head: list[int]) -> kv.KV:
        """Key/values of the virtual prefix plus `head` (batch 1), computed once per distinct head."""
        if tuple(head) != self._head_ids:
            self._head_kv = kv.extend(self.base, self._virtual, head)
            self._head_ids = tuple(head)
        return self._head_kv
