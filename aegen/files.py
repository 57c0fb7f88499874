"""Writing files so that a crash or Ctrl-C never leaves a damaged file under the real name."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import UsageError


def temporary_beside(path: str | os.PathLike, suffix: str = ".part") -> Path:
    """A new empty file in `path`'s folder (created if needed), to be renamed over `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    return Path(tmp)


def commit(tmp: Path, path: str | os.PathLike) -> None:
    """Rename a finished temporary file over `path`, with the permissions a new file gets."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it private
    with open(tmp, "rb+") as fh:  # on disk before it takes the real name
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block completes."""
    tmp = temporary_beside(path)
    try:
        yield tmp
        commit(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def refuse_overwrite(paths: Iterable[str | os.PathLike], force: bool) -> None:
    """Raise a usage error naming the first existing path, unless `force`."""
    if force:
        return
    for path in paths:
        if Path(path).exists():
            raise UsageError(f"{path} exists; use `force` to overwrite it", parameters=["force"])
