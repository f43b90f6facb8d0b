"""The GLM backend: greedy, cached, batched generation with transformers' native `GlmForCausalLM`.

Two things are computed once and reused by every call, because every prompt of the agent starts with
them: the P-tuning v2 prefix (virtual key/values, when an adapter is loaded) and the system message that
offers the tools. A call then only runs the rest of each prompt, left-padded into one batch, and decodes
with the KV cache until a stop token.

Positions follow ChatGLM3's P-tuning v2: virtual prefix tokens take no position; the first real token
is position 0, whatever the padding.
"""

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import kv
from agent.backend import Generation, ModelBackend, StopReason
from agent.call_constraint import CallConstraint, ConversationConstraint, Span, Vocabulary, choose_span
from agent.chatglm_format import Message, encode_message, encode_prompt
from agent.errors import UserError
from agent.prompting import Prompting
from agent.stand_ins import Aliases, aliases
from agent.tokenizer import GLMTokenizer
from agent.torch_compat import ensure_torchvision

if TYPE_CHECKING:
    from agent.loading import LoadOptions


SPAN_STARTS = 8  # starts of a quoted value scored as whole spans (agent/call_constraint.py)


class Masks:
    """Additive logit masks (0 where allowed, -inf elsewhere) of one generation: a row's latest, reused.

    The constraint hands back the same list object while a rule holds (a report's number rule allows nearly
    the whole vocabulary at every step), so a row's mask is rebuilt only when its list changes, not indexed
    from a list each step. One mask per row is kept: a generation holds at most a batch of them.
    """

    def __init__(self, logits: Any) -> None:
        self._like = logits[0]
        self._latest: dict[int, tuple[list[int], Any]] = {}

    def of(self, row: int, allowed: list[int]) -> Any:
        latest = self._latest.get(row)
        if latest is None or latest[0] is not allowed:
            mask = self._like.new_full(self._like.shape, float("-inf"))
            mask[allowed] = 0.0
            latest = self._latest[row] = (allowed, mask)
        return latest[1]


class GLMBackend(ModelBackend):
    """Generate with a `GlmForCausalLM`, optionally wrapped by a peft prefix-tuning adapter."""

    def __init__(
        self,
        model: Any,
        tokenizer: GLMTokenizer,
        constraint: CallConstraint | None = None,
        prompting: Prompting | None = None,
    ) -> None:
        import torch

        ensure_torchvision()  # transformers' lazy imports touch torchvision

        self.tokenizer = tokenizer
        self.constraint = constraint
        prompting = prompting or Prompting()
        self.stand_ins = prompting.stand_ins
        self.span_bonus = prompting.span_bonus
        self._vocabulary = Vocabulary(tokenizer.token_bytes) if constraint else None
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
    def load(cls, model_dir: Path, options: "LoadOptions", constraint: CallConstraint | None = None) -> "GLMBackend":
        """The model and tokenizer of a model folder, loaded as `options` say, decoding under `constraint`."""
        from agent.loading import load_model

        prompting = Prompting.of(options.prefix or model_dir)
        return cls(load_model(model_dir, options), GLMTokenizer.load(model_dir), constraint, prompting)

    @property
    def virtual_tokens(self) -> int:
        return kv.length(self._virtual)

    def generate(self, conversations: list[list[Message]], max_new_tokens: int = 128) -> list[Generation]:
        with self._torch.inference_mode():
            return self._generate(conversations, max_new_tokens)

    def _generate(self, conversations: list[list[Message]], max_new_tokens: int) -> list[Generation]:
        """Generate for `conversations` as the model reads them (stand-ins written in, then taken back out)."""
        torch = self._torch
        hidden = [aliases(messages, self.tokenizer, self.stand_ins) for messages in conversations]
        conversations = [alias.hide(messages) for alias, messages in zip(hidden, conversations, strict=True)]
        prompts = [encode_prompt(self.tokenizer, messages) for messages in conversations]
        for prompt in prompts:
            if len(prompt) + max_new_tokens > self.context:
                raise UserError(
                    f"the conversation needs {len(prompt)} + {max_new_tokens} tokens, more than the model's "
                    f"context of {self.context}; shorten the input or the history"
                )
        started = time.perf_counter()
        output, attention, position = self._prefill(prompts, self._shared_head(conversations))
        prefilled = time.perf_counter()
        batch = len(prompts)
        tokens: list[list[int]] = [[] for _ in prompts]
        stops: list[StopReason | None] = [None] * batch
        rows = self._constraints(conversations, hidden)
        cache = output.past_key_values
        logits = output.logits[:, -1]
        masks = Masks(logits)
        for step in range(max_new_tokens):
            chosen = self._greedy(self._constrain(logits, rows, stops, masks, (cache, attention, position)))
            for row, token in enumerate(chosen.tolist()):
                if stops[row] is None:
                    stop = self._stop_reason(token)
                    stops[row] = stop
                    if stop is None:
                        tokens[row].append(token)
                        if rows:
                            rows[row].add(token)
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
                text=alias.restore(self.tokenizer.decode(row_tokens)),
                token_ids=row_tokens,
                prompt_tokens=len(prompt),
                stop=stop or "length",
                prefill_s=(prefilled - started) / batch,
                decode_s=(finished - prefilled) / batch,
            )
            for row_tokens, prompt, stop, alias in zip(tokens, prompts, stops, hidden, strict=True)
        ]

    def _prefill(self, prompts: list[list[int]], head: list[int]) -> tuple[Any, Any, Any]:
        """Run the prompts left-padded on top of the cached `head`: (output, attention mask, last positions)."""
        torch = self._torch
        past_kv = self._kv_for_head(head)
        rests = [prompt[len(head) :] for prompt in prompts]
        width, batch, pad = max(map(len, rests)), len(rests), self.tokenizer.pad_id
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
        return output, attention, positions[:, -1:]

    def _constraints(self, conversations: list[list[Message]], hidden: list[Aliases]) -> list[ConversationConstraint]:
        if self.constraint is None or self._vocabulary is None:
            return []
        return [
            self.constraint.for_conversation(messages, self._vocabulary, alias.restore)
            for messages, alias in zip(conversations, hidden, strict=True)
        ]

    def _constrain(
        self,
        logits: Any,
        rows: list[ConversationConstraint],
        stops: list[StopReason | None],
        masks: Masks,
        state: tuple[Any, ...],
    ) -> Any:
        """`logits` with every token a constrained row may not write next pushed to -inf.

        `state` is (cache, attention mask, positions) of the batch so far, for scoring a row's spans.
        """
        for row, constraint in enumerate(rows):
            if stops[row] is not None:
                continue
            starts = constraint.span_starts()
            if starts:
                constraint.follow(self._best_span(starts, logits[row], row, state, constraint.registered))
            allowed = constraint.allowed()
            if allowed is not None:
                logits[row] += masks.of(row, allowed)
        return logits

    def _best_span(
        self, starts: list[bytes], first: Any, row: int, state: tuple[Any, ...], registered: Callable[[bytes], bool]
    ) -> list[int]:
        """The ids of the best quoted value among the spans that begin with one of `starts`.

        A span scores its log-probability plus `span_bonus` per character: a small model copies each further
        character of a name with less than certainty, so its raw scores favour spans that start late or
        stop early; the bonus, tuned on the model's dev split, evens that out. The database's sites
        (`registered`) have the last word (`choose_span`).
        """
        spelt, scores = self._span_scores(starts, first, row, *state)
        token_bytes = self.tokenizer.token_bytes
        spans: list[Span] = []
        for index, span in enumerate(spelt):
            for size in range(1, len(span) + 1):
                text = b"".join(token_bytes[t] for t in span[:size])
                try:
                    characters = len(text.decode("utf-8"))
                except UnicodeDecodeError:
                    continue  # a span ends on whole characters only
                raw = float(scores[index, size - 1])
                spans.append(Span(text, span[:size], raw, raw + self.span_bonus * characters))
        return choose_span(spans, registered).ids if spans else spelt[0][:1]

    def _span_scores(
        self, starts: list[bytes], first: Any, row: int, cache: Any, attention: Any, position: Any
    ) -> tuple[list[list[int]], Any]:
        """The `SPAN_STARTS` likeliest starts (by their first piece) in ids, and each prefix's score.

        They run together on top of `row`'s cache; `scores[i, k - 1]` is the log-probability of the first
        `k` pieces of start `i` and of a closing quote right after them.
        """
        torch, quotes = self._torch, self._vocabulary.quotes if self._vocabulary else []
        first = first[: self.tokenizer.vocab_size].float().log_softmax(-1)
        spelt = sorted((self._spell(start) for start in starts), key=lambda ids: -float(first[ids[0]]))
        spelt = spelt[:SPAN_STARTS]
        count, width = len(spelt), max(map(len, spelt))
        ids = torch.tensor([s + [self.tokenizer.pad_id] * (width - len(s)) for s in spelt], device=self.device)
        steps = torch.arange(width, device=self.device)
        output = self.base(
            input_ids=ids,
            attention_mask=torch.cat([attention[row : row + 1], attention.new_ones(1, width)], 1).expand(count, -1),
            position_ids=(position[row : row + 1] + 1 + steps).expand(count, -1),
            past_key_values=kv.cache([(k[row : row + 1], v[row : row + 1]) for k, v in kv.layers(cache)], count),
            use_cache=True,
        )
        logp = output.logits[..., : self.tokenizer.vocab_size].float().log_softmax(-1)
        pieces = logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
        scores = first[ids[:, 0]][:, None] + torch.cat([pieces.new_zeros(count, 1), pieces.cumsum(-1)], 1)
        return spelt, scores + logp[..., quotes].logsumexp(-1)

    def _spell(self, text: bytes) -> list[int]:
        """`text` in ids as the tokenizer writes it inside a longer text (without its dummy-prefix space)."""
        assert self._vocabulary is not None
        ids = self.tokenizer.encode(text.decode("utf-8", "ignore"))
        if ids and self.tokenizer.token_bytes[ids[0]] == b" ":
            ids = ids[1:]
        if b"".join(self.tokenizer.token_bytes[i] for i in ids) != text:
            return self._vocabulary.spell(text)
        return ids

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
