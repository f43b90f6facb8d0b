"""ChatGLM3's tokenizer: a SentencePiece model with nine special tokens appended after its pieces.

The layout is ChatGLM3-6B's: pieces keep their SentencePiece ids, then `[MASK] [gMASK] [sMASK] sop eop
<|system|> <|user|> <|assistant|> <|observation|>` take the next ids in that order; bos, eos and pad are the
SentencePiece bos, eos and unk ids. Text is always encoded as text: the specials exist only as ids, so no
string a user or a tool writes can ever produce one.
"""

from collections.abc import Iterable
from functools import cached_property
from pathlib import Path

from agent.errors import ConfigError

SPECIAL_TOKENS = (
    "[MASK]",
    "[gMASK]",
    "[sMASK]",
    "sop",
    "eop",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
)
TOKENIZER_FILE = "tokenizer.model"


class GLMTokenizer:
    """Encode and decode text the way ChatGLM3's `SPTokenizer` does."""

    def __init__(self, model_file: Path) -> None:
        import sentencepiece

        if not model_file.is_file():
            raise ConfigError(f"no SentencePiece model at {model_file}")
        self.model_file = model_file
        try:
            self._sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
        except (OSError, RuntimeError) as err:
            raise ConfigError(f"{model_file} is not a SentencePiece model: {err}") from None
        self.n_pieces: int = self._sp.vocab_size()
        self.special: dict[str, int] = {token: self.n_pieces + i for i, token in enumerate(SPECIAL_TOKENS)}
        self._special_by_id = {i: token for token, i in self.special.items()}
        self.bos_id: int = self._sp.bos_id()
        self.eos_id: int = self._sp.eos_id()
        self.pad_id: int = self._sp.unk_id()

    @classmethod
    def load(cls, path: Path) -> "GLMTokenizer":
        """A tokenizer from a `tokenizer.model` file or a directory holding one."""
        return cls(path / TOKENIZER_FILE if path.is_dir() else path)

    @property
    def vocab_size(self) -> int:
        """Pieces plus special tokens: the smallest embedding that covers every id."""
        return self.n_pieces + len(SPECIAL_TOKENS)

    @property
    def prefix(self) -> list[int]:
        """What every ChatGLM3 sequence starts with: `[gMASK] sop`."""
        return [self.special["[gMASK]"], self.special["sop"]]

    def role(self, role: str) -> int:
        """The id of `<|role|>`."""
        return self.special[f"<|{role}|>"]

    @cached_property
    def stop_ids(self) -> frozenset[int]:
        """Generation of an assistant message ends at any of these."""
        return frozenset({self.eos_id, self.role("user"), self.role("observation")})

    def encode(self, text: str) -> list[int]:
        """Plain SentencePiece ids of `text`, with SentencePiece's own dummy prefix, as ChatGLM3 encodes."""
        return self._sp.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`; special tokens are written out by name, runs of pieces decoded together."""
        text, run = [], []
        for i in ids:
            if i in self._special_by_id:
                text.append(self._sp.decode(run))
                text.append(self._special_by_id[i])
                run = []
            else:
                run.append(i)
        text.append(self._sp.decode(run))
        return "".join(text)

    @cached_property
    def token_bytes(self) -> list[bytes]:
        """The bytes each id adds to a decoded text (`▁` as a space); empty for specials and control pieces."""
        sp = self._sp
        table = []
        for i in range(self.n_pieces):
            piece = sp.id_to_piece(i)
            if sp.is_byte(i):
                table.append(bytes([int(piece[1:-1], 16)]))
            elif sp.is_control(i) or sp.is_unknown(i):
                table.append(b"")
            else:
                table.append(piece.replace("\u2581", " ").encode("utf-8"))
        return table + [b""] * len(SPECIAL_TOKENS)

    @cached_property
    def characters(self) -> frozenset[str]:
        """The characters some id writes alone (the others take several pieces, bytes perhaps)."""
        found = set()
        for text in self.token_bytes:
            try:
                decoded = text.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if len(decoded) == 1:
                found.add(decoded)
        return frozenset(found)

    def piece(self, i: int) -> str:
        """The surface form of one id, for debugging views."""
        return self._special_by_id.get(i) or self._sp.id_to_piece(i)
