"""Train the project's own SentencePiece model in ChatGLM3's layout.

Chinese stays one character per piece: every CJK character frequent in the corpus is a user-defined
symbol, which SentencePiece never merges with anything, so a site name has the same pieces in the
request, in the tool call and in the report, and copying it is learnable. Only the ASCII syntax of tool
calls and JSON merges (BPE). Rare characters are left out on purpose: they and any character never seen
encode through byte fallback, whose 256 byte pieces the model therefore learns to copy too.
"""

import io
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from agent.tokenizer import TOKENIZER_FILE, GLMTokenizer


def is_cjk(char: str) -> bool:
    """A character of a CJK script or CJK punctuation (never merged, one piece each)."""
    name = unicodedata.name(char, "")
    return name.startswith(("CJK", "FULLWIDTH", "IDEOGRAPHIC", "HALFWIDTH")) or "\u3000" <= char <= "\u303f"


def train_tokenizer(
    texts: Iterable[str], out_dir: Path, *, merges: int = 600, min_char_count: int = 5, reserved: str = ""
) -> GLMTokenizer:
    """Train on `texts` (message texts of the corpus), write `out_dir/tokenizer.model`, return it loaded.

    Each character of `reserved` gets a piece of its own too, whether the corpus has it or not.
    """
    import sentencepiece

    lines = [line for text in texts for line in text.split("\n") if line]
    counts = Counter(char for line in lines for char in line)
    symbols = sorted(char for char, count in counts.items() if is_cjk(char) and count >= min_char_count)
    symbols += [char for char in dict.fromkeys(reserved) if char not in symbols]
    rare = {char for char, count in counts.items() if count < min_char_count}
    kept = [line for line in lines if not rare.intersection(line)]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(kept),
        model_writer=model,
        model_type="bpe",
        vocab_size=3 + 256 + len({char for line in kept for char in line} | set(symbols)) + merges,
        hard_vocab_limit=False,
        user_defined_symbols=symbols,
        byte_fallback=True,
        character_coverage=1.0,
        split_digits=True,
        split_by_unicode_script=False,
        allow_whitespace_only_pieces=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=2,
        minloglevel=2,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / TOKENIZER_FILE
    path.write_bytes(model.getvalue())
    return GLMTokenizer.load(path)
