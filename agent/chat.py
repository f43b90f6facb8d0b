"""The terminal chat: the inspector's words in, tool calls, observations and the report out, with rich.

Reads a terminal interactively, or piped standard input one request per line, so a chat can be scripted.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from agent.audit import AuditLog
from agent.chatglm_format import ToolCall, render_call
from agent.state_machine import Agent, Turn
from prompts import load


class Chat:
    def __init__(self, console: Console, audit: AuditLog, evidence_dir: Path | None) -> None:
        self.console, self.audit, self.evidence_dir = console, audit, evidence_dir
        self.texts = load("agent")["chat"]
        self.steps = load("agent")["steps"]
        self._status: Any = None

    def observe(self, kind: str, payload: Any) -> None:
        """The agent's live events: the spinner says what runs; calls and observations are shown as they happen."""
        if kind == "model" and self._status is not None:
            self._status.update(f"语言模型: {self.steps.get(payload, payload)}…")
        elif kind == "tool" and isinstance(payload, ToolCall):
            call = render_call(payload.arguments).split("\n")[1].replace("tool_call", payload.name, 1)
            self.console.print(Panel(Text(call), title="工具调用", title_align="left", border_style="blue"))
            if self._status is not None:
                self._status.update(f"工具 {payload.name} 运行中…")
        elif kind == "observation":
            body = Text(json.dumps(payload, ensure_ascii=False), style="dim")
            self.console.print(Panel(body, title="观测", title_align="left", border_style="grey50"))

    def run(self, agent: Agent, lines: Iterator[str], echo: bool) -> None:
        self.console.print(self.texts["banner"], style="bold")
        try:
            for line in lines:
                text = line.rstrip("\n")
                if echo:
                    self.console.print(Text(self.texts["prompt"] + text, style="bold cyan"))
                if text.strip().startswith("/") and self._command(agent, text.strip()):
                    break
                if not text.strip().startswith("/"):
                    self._turn(agent, text)
        except (KeyboardInterrupt, EOFError):
            self.console.print()
        self.console.print(self.texts["goodbye"])

    def _command(self, agent: Agent, command: str) -> bool:
        """Run a slash command; True ends the chat."""
        if command == "/exit":
            return True
        if command == "/help":
            self.console.print(self.texts["help"])
        elif command == "/reset":
            agent.memory.reset()
            self.console.print(self.texts["reset"])
        elif command == "/history":
            for turn in agent.memory.turns:
                self.console.print(Text(f"{self.texts['prompt']}{turn[0].content}", style="cyan"))
                self.console.print(Text(f"  → {turn[-1].content}"))
        else:
            self.console.print(self.texts["unknown_command"].format(command=command), style="yellow")
        return False

    def _turn(self, agent: Agent, text: str) -> Turn:
        before = self._evidence()
        with self.console.status("语言模型思考中…") as status:
            self._status = status
            try:
                turn = agent.turn(text)
            finally:
                self._status = None
        style = "yellow" if turn.flagged else "green"
        self.console.print(Panel(Text(turn.reply, style=f"bold {style}"), border_style=style, title=turn.state.value))
        if turn.verdict is not None and turn.verdict.replaced:
            self.console.print(self.texts["corrected"].format(reason=turn.verdict.reason), style="yellow")
        for path in sorted(self._evidence() - before):
            self.console.print(self.texts["evidence"].format(path=path))
        self.audit.write(turn)
        return turn

    def _evidence(self) -> set[Path]:
        if self.evidence_dir is None or not self.evidence_dir.is_dir():
            return set()
        return set(self.evidence_dir.iterdir())


def input_lines(console: Console, stream: TextIO, interactive: bool) -> Iterator[str]:
    """Lines typed at the terminal (with a prompt), or read from a pipe."""
    if interactive:
        prompt = load("agent")["chat"]["prompt"]
        while True:
            yield console.input(f"[bold cyan]{prompt}[/]")
    else:
        yield from stream
