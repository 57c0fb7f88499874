"""Logs and progress on stderr. Live bars only on a terminal; nothing but warnings with quiet."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO


class Task:
    """A progress handle; `advance` is cheap and never touches the GPU."""

    def __init__(self, progress: Any = None, task_id: Any = None):
        self._progress, self._id = progress, task_id

    @property
    def active(self) -> bool:
        """Whether anything is shown: callers skip work (like reading a loss) when not."""
        return self._progress is not None

    def advance(self, steps: int = 1, **fields: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._id, advance=steps, **fields)

    def update(self, **fields: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._id, **fields)


class Reporter:
    """Where a command's progress and messages go. stdout is left to results."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        interactive = getattr(self.stream, "isatty", lambda: False)()
        self.live = not quiet and interactive and os.environ.get("TERM") != "dumb"

    def info(self, message: str) -> None:
        """A log line, unless quiet. On a terminal, shown even while a bar is live."""
        if not self.quiet:
            print(message, file=self.stream, flush=True)

    def warn(self, message: str) -> None:
        print(f"aegen: warning: {message}", file=self.stream, flush=True)

    @contextlib.contextmanager
    def task(self, description: str, total: int, loss: bool = False) -> Iterator[Task]:
        """A live progress bar on a terminal; elsewhere a handle that does nothing."""
        if not self.live:
            yield Task()
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
