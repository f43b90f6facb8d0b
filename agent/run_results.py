"""`results.jsonl`: one JSON line per finished item, appended so that a killed run loses at most that line.

Each record is written with a single `write` of the whole line, then flushed to disk (fsync). A run killed
mid-write leaves a last line without its newline; opening the file drops it (rewriting the file without
it, atomically). An item's last record is its result: "done" when that record is ok.
"""

import json
import os
from pathlib import Path
from typing import Any

from agent.errors import UserError

Record = dict[str, Any]


class Results:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[Record] = []
        self.repaired = False  # a truncated last line was dropped
        if path.exists():
            self._read()

    def _read(self) -> None:
        data = self.path.read_bytes()
        complete, _, rest = data.rpartition(b"\n")
        if rest:
            self._rewrite(complete + b"\n" if complete else b"")
            self.repaired = True
        for number, line in enumerate(complete.split(b"\n") if complete else [], start=1):
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                record = None
            if not (isinstance(record, dict) and {"key", "status"} <= record.keys()):
                raise UserError(f"{self.path}:{number} is not a result record; remove or fix that line")
            self.records.append(record)

    def _rewrite(self, data: bytes) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_bytes(data)
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        partial.replace(self.path)

    def latest(self) -> dict[str, Record]:
        """Each item's last record, by key."""
        return {record["key"]: record for record in self.records}

    def done(self) -> set[str]:
        return {key for key, record in self.latest().items() if record["status"] == "ok"}

    def append(self, record: Record) -> None:
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if os.write(descriptor, line) != len(line):
                raise OSError(f"{self.path}: short write; the record will be dropped when the run resumes")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        self.records.append(record)
