"""What a launcher (torchrun) told this process, read without torch: the CLI needs it before
any command runs (who prints, who stops on SIGTERM), and `aegen --help` must stay fast.
aegen/distributed.py does the talking between processes."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

from .errors import AegenError


class PeerFailure(AegenError):
    """Another process of a distributed run failed, or torchrun stopped this one (exit 1)."""


def launched() -> bool:
    """Whether torchrun (or an equivalent launcher) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def env_rank() -> int:
    """This process's rank from the launcher's environment (0 without a launcher)."""
    return int(os.environ.get("RANK", "0") or 0) if launched() else 0


def env_world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """torchrun stops the other processes with SIGTERM when one fails: turn that into a
    PeerFailure, so each says why in one line and files in progress are removed whole."""
    if not launched() or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum, frame):
        raise PeerFailure(
            f"rank {env_rank()} of {env_world()}: stopped by SIGTERM (torchrun stops the other "
            "processes when one fails; see its message above)"
        )

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    except BaseException:
        # Failing already: torchrun's SIGTERM must not cut the one line that says why.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise
    signal.signal(signal.SIGTERM, previous)
