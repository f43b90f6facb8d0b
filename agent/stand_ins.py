"""Stand-ins: Chinese characters the tokenizer has no piece for, shown to the model as pieces it knows.

The default model's tokenizer has one piece per Chinese character of its training data, and byte fallback
for any other. A real place name whose characters the data never used (邯郸, 郓城县) would reach the model as
byte pieces it never learned to copy into a call, and no decoding rule can make it write them. So, as in
Luong et al.'s copyable unknown words, before a conversation is encoded each such character of the
inspector's words becomes a stand-in, a private-use character with a piece of its own (the first unknown
character the first stand-in, and so on), the same in every message; the model's answer gets the original
characters back. The model learned in training (`practice`) that a stand-in may be part of a name or of the
words around it, and copies it like any other piece.

A model folder that names no stand-ins (`prompting.json`; a converted ChatGLM3-6B, whose tokenizer has a
piece for everything) leaves conversations as they are.
"""

import random
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from agent.chatglm_format import Message
from agent.tokenizer import GLMTokenizer

STAND_INS = "".join(map(chr, range(0xE000, 0xE008)))  # Unicode private use: no text of the data has them
SITE_VALUE = re.compile(r"site='([^']+)'")  # a site argument as a call message writes it


@dataclass(frozen=True)
class Aliases:
    """One conversation's stand-ins: `hide` writes them in, `restore` takes them out of the model's text."""

    hidden: dict[str, str]

    def hide(self, messages: list[Message]) -> list[Message]:
        if not self.hidden:
            return messages
        table = str.maketrans(self.hidden)
        return [replace(message, content=message.content.translate(table)) for message in messages]

    def restore(self, text: str) -> str:
        return text.translate(str.maketrans({stand_in: char for char, stand_in in self.hidden.items()}))


def _ideographs(messages: list[Message]) -> list[str]:
    """The distinct ideographs of the user's messages, in order of first appearance."""
    text = "".join(message.content for message in messages if message.role == "user")
    return [char for char in dict.fromkeys(text) if _ideograph(char)]


def _ideograph(char: str) -> bool:
    return unicodedata.name(char, "").startswith("CJK UNIFIED IDEOGRAPH")


def alphabet(tokenizer: GLMTokenizer) -> str:
    """The ideographs the tokenizer writes in one piece each, in code-point order: what a name swap draws."""
    return "".join(sorted(char for char in tokenizer.characters if _ideograph(char)))


def _free(messages: list[Message], stand_ins: str) -> list[str]:
    used = set("".join(message.content for message in messages))
    return [char for char in stand_ins if char not in used]


def aliases(messages: list[Message], tokenizer: GLMTokenizer, stand_ins: str) -> Aliases:
    """Stand-ins, in order, for the ideographs of the user's words that the tokenizer has no piece for.

    A character left without a free stand-in stays as it is (in bytes).
    """
    unknown = [char for char in _ideographs(messages) if char not in tokenizer.characters]
    return Aliases(dict(zip(unknown, _free(messages, stand_ins), strict=False)))


@dataclass(frozen=True)
class Practice:
    """How training shows stand-ins: in a `share` of the dialogues, for 1 to `most` of the user's characters.

    The characters are drawn at random from the user's words (a name's or the words around it), so the model
    learns to tell a name by its context, not by its characters, wherever a stand-in is. Which stand-in each
    gets is drawn too: in order (as `aliases` assigns them) the first stand-in was in most practised names,
    and the model learned to write it where another stood (五莲县 as 把莲县, with 把 the first stand-in).
    """

    share: float
    most: int
    seed: int
    stand_ins: str = STAND_INS
    # In this share of the dialogues, 1 to `most` characters that only the site's name holds are written as
    # other characters of `alphabet` (the tokenizer's), the same in every message: training names draw on a
    # small pool of characters, and a model that learned the pool cuts a real name at the first character
    # outside it (火星 as 火). 0: none, and the stand-ins are drawn as without it.
    swaps: float = 0.0
    alphabet: str = ""

    def dialogues(self, dialogues: Iterable[list[Message]]) -> Iterator[list[Message]]:
        rng, swap_rng = random.Random(self.seed), random.Random(f"swaps-{self.seed}")
        for messages in dialogues:
            chars = _ideographs(messages)
            if chars and rng.random() < self.share:
                chosen = set(rng.sample(chars, min(len(chars), rng.randint(1, self.most))))
                unknown = [char for char in chars if char in chosen]
                free = _free(messages, self.stand_ins)
                drawn = rng.sample(free, min(len(unknown), len(free)))
                messages = Aliases(dict(zip(unknown, drawn, strict=False))).hide(messages)
            if self.swaps and swap_rng.random() < self.swaps:
                messages = self._swap(messages, swap_rng)
            yield messages

    def _swap(self, messages: list[Message], rng: random.Random) -> list[Message]:
        own = _name_only(messages)
        if not own:
            return messages
        chosen = rng.sample(own, min(len(own), rng.randint(1, self.most)))
        pool = _free(messages, self.alphabet)
        return Aliases(dict(zip(chosen, rng.sample(pool, min(len(chosen), len(pool))), strict=False))).hide(messages)


def _name_only(messages: list[Message]) -> list[str]:
    """The ideographs of the dialogue's called site names that none of its other words hold, in order."""
    text = "".join(message.content for message in messages)
    names = sorted(dict.fromkeys(SITE_VALUE.findall(text)), key=len, reverse=True)  # not a set: its order is hashed
    rest = text
    for name in names:
        rest = rest.replace(name, "")
    own = dict.fromkeys("".join(names))
    return [char for char in own if _ideograph(char) and char not in rest]
