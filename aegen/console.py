"""Logs and progress on stderr: live bars on a terminal, plain lines every PLAIN_INTERVAL_S
seconds elsewhere (a log file, a pipe, TERM=dumb), nothing but warnings with quiet."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from .errors import MARKED, UsageError

PLAIN_INTERVAL_S = 10.0
"""Seconds between two plain progress lines of a task; AEGEN_PROGRESS_INTERVAL overrides it."""

INTERVAL_ENV = "AEGEN_PROGRESS_INTERVAL"

_clock = time.monotonic  # tests replace it with a clock they move

# What a terminal would act on instead of showing: C0 and C1 controls (ESC starts the
# sequences that move the cursor, recolour or retitle), DEL, the line and paragraph separators,
# the bidirectional overrides that reorder what is shown, and lone surrogates (an undecodable
# byte of a file name), which a strict stream cannot even encode.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: object) -> str:
    """`text` as one line that shows what it holds and does nothing else on a terminal:
    each control character (newline, ESC, ...) written as its escape (\\n, \\x1b, \\u202e).
    For every string from outside (a checkpoint, a plugin, a file name) printed for people;
    JSON output stays exact."""
    return _UNSAFE.sub(_escape, str(text))


class Task:
    """A progress handle; `advance` is cheap and never touches the GPU."""

    def __init__(self, progress: Any = None, task_id: Any = None):
        self._progress, self._id = progress, task_id

    @property
    def active(self) -> bool:
        """Whether fields given now would be shown: callers skip work (like reading a loss,
        a GPU sync) when not. Always on a live bar; never when quiet."""
        return self._progress is not None

    def advance(self, steps: int = 1, **fields: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._id, advance=steps, **fields)

    def update(self, **fields: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._id, **fields)


class PlainTask(Task):
    """Progress as plain log lines: one at most every `interval` seconds, and a closing one
    when the task ends if any was printed. `active` is true only while a line is due, so a
    caller that reads a loss only when active reads it once per line. A task that shows
    fields (a loss) prints its line on the first `advance` that brings them once it is due,
    so the line never shows a stale value; the step count is right whatever the fields."""

    def __init__(
        self,
        stream: TextIO,
        description: str,
        total: int | None,
        interval: float,
        unit: str | None = None,
        fields: bool = False,
    ):
        super().__init__()
        self.wants_fields = fields
        self.stream, self.description, self.total = stream, description, total
        self.unit = unit or ("steps" if total is not None else "done")
        self.interval = interval
        self.completed = 0
        self.fields: dict[str, Any] = {}
        self.lines = 0
        self.started = _clock()
        self._due = self.started + interval

    @property
    def active(self) -> bool:
        return _clock() >= self._due

    def advance(self, steps: int = 1, **fields: Any) -> None:
        self.completed += steps
        if fields:
            self.fields.update(fields)
        now = _clock()
        if now >= self._due and (fields or not self.wants_fields):
            self._print(now)

    def update(self, **fields: Any) -> None:
        for key in ("total", "completed", "description"):  # what rich's update takes too
            if key in fields:
                setattr(self, key, fields.pop(key))
        self.completed += fields.pop("advance", 0)
        self.fields.update(fields)

    def close(self) -> None:
        """The closing line, only after progress lines (a short task stays silent)."""
        if self.lines:
            elapsed = _clock() - self.started
            print(
                printable(f"{self.description}: {self._count()} in {_duration(elapsed)}"
                          + self._extras()),
                file=self.stream,
                flush=True,
            )

    def _print(self, now: float) -> None:
        elapsed = now - self.started
        line = f"{self.description}: {self._count()}, {_duration(elapsed)} elapsed"
        if self.total is not None and 0 < self.completed <= self.total:
            left = elapsed / self.completed * (self.total - self.completed)
            line += f", about {_duration(left)} left"
        print(printable(line + self._extras()), file=self.stream, flush=True)
        self.lines += 1
        self._due = now + self.interval

    def _count(self) -> str:
        if self.total is None:
            return f"{self.completed} {self.unit}"
        return f"{self.completed}/{self.total} {self.unit}"

    def _extras(self) -> str:
        return "".join(f", {key} {value}" for key, value in self.fields.items())


def _duration(seconds: float) -> str:
    """10.2 s, 3 min 09 s, 2 h 05 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def plain_interval() -> float:
    """Seconds between plain progress lines: AEGEN_PROGRESS_INTERVAL, else PLAIN_INTERVAL_S."""
    text = os.environ.get(INTERVAL_ENV, "").strip()
    if not text:
        return PLAIN_INTERVAL_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (0 <= value < float("inf")):
        raise UsageError(f"{INTERVAL_ENV} must be a number of seconds >= 0, got {text!r}")
    return value


class Reporter:
    """Where a command's progress and messages go. stdout is left to results."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None,
                 names: Callable[[str], str] | None = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.names = names  # how `parameter` marks read here: the CLI gives its flags
        interactive = getattr(self.stream, "isatty", lambda: False)()
        self.live = not quiet and interactive and os.environ.get("TERM") != "dumb"
        self.interval = None if quiet or self.live else plain_interval()

    def info(self, message: str) -> None:
        """A log line, unless quiet. On a terminal, shown even while a bar is live."""
        if not self.quiet:
            print(printable(self.words(message)), file=self.stream, flush=True)

    def warn(self, message: str) -> None:
        """A warning, also when quiet; one line whatever the message holds."""
        print(f"aegen: warning: {printable(self.words(message))}", file=self.stream, flush=True)

    def words(self, message: str) -> str:
        """A message with each `parameter` it marks named as this reporter's reader knows it:
        as the flag on the command line, as the parameter (marks kept) in Python."""
        if self.names is None:
            return message
        return MARKED.sub(lambda found: self.names(found.group(1)), message)

    @contextlib.contextmanager
    def task(
        self, description: str, total: int | None, loss: bool = False, unit: str | None = None
    ) -> Iterator[Task]:
        """A live progress bar on a terminal; plain lines every `interval` seconds elsewhere;
        a handle that does nothing when quiet. `unit` names what plain lines count (default:
        steps, or "done" without a total)."""
        if self.quiet:
            yield Task()
            return
        if not self.live:
            plain = PlainTask(self.stream, description, total, self.interval, unit, loss)
            yield plain
            plain.close()
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ]
        if loss:
            columns.append(TextColumn("loss {task.fields[loss]}"))
        console = Console(file=self.stream)
        with Progress(*columns, console=console, transient=False) as progress:
            fields = {"loss": "-"} if loss else {}
            yield Task(progress, progress.add_task(description, total=total, **fields))
