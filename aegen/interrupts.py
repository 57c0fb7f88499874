"""Ctrl-C that stops a run between steps, never in the middle of writing a frame."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def stop_between_steps() -> Iterator[Callable[[], None]]:
    """Yield a `checkpoint()` to call after each step: it raises KeyboardInterrupt there if
    SIGINT arrived. A second SIGINT interrupts at once. Outside the main thread, a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    received: list[int] = []

    def on_sigint(signum, frame):
        if received:  # asked twice: stop now
            raise KeyboardInterrupt
        received.append(signum)

    previous = signal.signal(signal.SIGINT, on_sigint)

    def checkpoint() -> None:
        if received:
            raise KeyboardInterrupt

    try:
        yield checkpoint
    finally:
        signal.signal(signal.SIGINT, previous)
