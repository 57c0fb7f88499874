"""Writing files so that a crash or Ctrl-C never leaves a damaged file under the real name."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import UsageError


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block completes."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def refuse_overwrite(paths: Iterable[str | os.PathLike], force: bool) -> None:
    """Raise a usage error naming the first existing path, unless `force`."""
    if force:
        return
    for path in paths:
        if Path(path).exists():
            raise UsageError(f"{path} exists; use --force to overwrite it")
