"""The audit log: one JSON line per turn — input, raw model outputs, parsed calls, observations, report,
the verifier's verdict and timings — appended and flushed as each turn ends."""

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

from agent.state_machine import Turn


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.session = uuid.uuid4().hex[:12]
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, turn: Turn, **context: Any) -> None:
        record = {"time": dt.datetime.now().isoformat(timespec="seconds"), "session": self.session, **context}
        record |= turn.record()
        with self.path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            log.flush()


def default_path(kind: str) -> Path:
    """`runs/audit/<kind>-<timestamp>.jsonl` under the current directory."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / "audit" / f"{kind}-{stamp}.jsonl"
