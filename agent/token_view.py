"""A token-by-token view of a training example: which tokens the model learns, and which it only reads."""

from rich.console import Console
from rich.text import Text

from agent.chatglm_format import IGNORE, Encoded
from agent.tokenizer import SPECIAL_TOKENS, GLMTokenizer

_LEARNED = "black on green"
_READ = "grey62"
_SPECIAL = "bold magenta"


def _surface(piece: str) -> str:
    """A piece as it reads on screen: SentencePiece's word marker as a space, a newline byte as ⏎."""
    return piece.replace("▁", " ").replace("<0x0A>", "⏎")


def token_text(tokenizer: GLMTokenizer, example: Encoded, show_ids: bool = False) -> Text:
    """Each token as a styled span; a role token starts a new line, as messages do."""
    text = Text()
    for token, label in zip(example.input_ids, example.labels, strict=True):
        piece = tokenizer.piece(token)
        if piece in SPECIAL_TOKENS and piece.startswith("<|"):
            text.append("\n")
        style = _LEARNED if label != IGNORE else (_SPECIAL if piece in SPECIAL_TOKENS else _READ)
        text.append(_surface(piece) + (f"·{token}" if show_ids else ""), style=style)
        text.append("│", style="dim")
    return text


def render_tokens(tokenizer: GLMTokenizer, example: Encoded, show_ids: bool = False) -> None:
    """Print the view with a legend and the counts."""
    console = Console()
    learned = sum(label != IGNORE for label in example.labels)
    console.print(token_text(tokenizer, example, show_ids))
    legend = Text.assemble(
        ("learned", _LEARNED),
        "  ",
        ("read only", _READ),
        "  ",
        ("special", _SPECIAL),
        f"   {len(example.input_ids)} tokens, {learned} with loss",
    )
    console.print(legend)
