"""Writing files so that a crash or Ctrl-C never leaves a damaged file under the real name, a
run never silently replaces a file it did not start with, and dead runs' leftovers go away.

- A file is written under a temporary name beside it, `.NAME.<pid>-<host>.<random>.part`, and
  renamed over the real name only once whole (`atomic_output`, `commit`).
- Concurrent writers: `refuse_overwrite` (called when a run plans its outputs) records what
  each output was at the run's start: absent, or which file (device, inode, size, mtime). At
  `commit` the target must still be that (or the file this run itself committed last); the
  check and the rename happen under an exclusive lock of the folder. Otherwise the run stops
  with `OutputConflict` (exit 1) naming the other run's file, and keeps its own result beside
  it as `STEM.<pid>.SUFFIX`.
- Leftovers: the first time a process writes into a folder, it removes the `.part` files there
  whose writer ran on this host and is gone (its pid no longer exists).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import AegenError, UsageError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
_PART = re.compile(r"^\..+\.(?P<pid>\d+)-(?P<host>[0-9a-f]{6})\.[A-Za-z0-9_]+\.part(\.\w+)?$")
_expected: dict[Path, tuple[int, int, int, int] | None] = {}  # output -> what it must be now
_swept: set[Path] = set()  # folders this process has cleaned of dead runs' .part files


class OutputConflict(AegenError):
    """Another writer replaced or created an output while this run was working."""


def _key(path: str | os.PathLike) -> Path:
    """One spelling per output, so a planned path and the written one match."""
    return Path(os.path.abspath(path))


def _identity(path: str | os.PathLike) -> tuple[int, int, int, int] | None:
    """Which file is at `path` (None if none), to tell whether someone replaced it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _alive(pid: int) -> bool:
    """Whether process `pid` exists here (when unsure, yes: its file is kept)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def sweep(folder: str | os.PathLike) -> list[Path]:
    """Remove the `.part` files in `folder` left by dead aegen processes of this host, once
    per process and folder; return what was removed."""
    folder = _key(folder)
    if folder in _swept or os.name == "nt":  # os.kill(pid, 0) would end a process there
        return []
    _swept.add(folder)
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    for name in names:
        match = _PART.match(name)
        if not match or match["host"] != _HOST:
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and not _alive(pid):
            with contextlib.suppress(OSError):
                (folder / name).unlink()
                removed.append(folder / name)
    return removed


def temporary_beside(path: str | os.PathLike, suffix: str = ".part") -> Path:
    """A new empty file in `path`'s folder (created if needed), to be renamed over `path`; its
    name carries this process's pid so a later run can tell whether it was left behind."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep(target.parent)
    prefix = f".{target.name}.{os.getpid()}-{_HOST}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock of `folder` among aegen processes, so that checking a target and
    renaming over it is one step (none where the system cannot lock a folder)."""
    fd = None
    if fcntl is not None:
        try:
            fd = os.open(folder, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            if fd is not None:
                os.close(fd)
            fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def _keep_aside(tmp: Path, path: Path) -> Path:
    """Give a conflicting run's finished file a name of its own beside `path`."""
    kept = path.with_name(f"{path.stem}.{os.getpid()}{path.suffix}")
    n = 0
    while kept.exists():
        n += 1
        kept = path.with_name(f"{path.stem}.{os.getpid()}-{n}{path.suffix}")
    os.replace(tmp, kept)
    return kept


def commit(tmp: Path, path: str | os.PathLike) -> None:
    """Rename a finished temporary file over `path`, with the permissions a new file gets;
    refuse (keeping it aside) if `path` is no longer what this run saw at its start."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it private
    with open(tmp, "rb+") as fh:  # on disk before it takes the real name
        os.fsync(fh.fileno())
    key = _key(path)
    with _folder_lock(key.parent):
        if key in _expected and _identity(key) != _expected[key]:
            kept = _keep_aside(tmp, key)
            raise OutputConflict(
                f"{path} was written by another run while this one ran; this run's result "
                f"is kept as {kept}"
            )
        os.replace(tmp, path)
        if key in _expected:
            _expected[key] = _identity(key)


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
    """Raise a usage error naming the first existing path, unless `force`; remember what each
    path is now, which `commit` holds it to, and clean its folder of dead runs' leftovers."""
    paths = list(paths)
    for path in paths:
        if not force and Path(path).exists():
            raise UsageError(f"{path} exists; use `force` to overwrite it", parameters=["force"])
    for path in paths:
        _expected[_key(path)] = _identity(path)
        if Path(path).parent.is_dir():
            sweep(Path(path).parent)


def check_writable(path: str | os.PathLike, parameter: str) -> Path:
    """`path` as a file this run can create or replace: not empty, not a folder, in a folder
    that exists or can be made and takes new files; checked before any long work."""
    if str(path).strip() == "":
        raise UsageError(f"`{parameter}` must name a file, got ''", parameters=[parameter])
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"`{parameter}` {path} is a folder; give a file name",
                         parameters=[parameter])
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"`{parameter}` {path}: {folder} is not a folder", parameters=[parameter])
    try:
        fd, probe = tempfile.mkstemp(prefix=".aegen-probe.", dir=folder)
    except OSError as exc:
        raise UsageError(f"`{parameter}` {path}: cannot write in {folder} "
                         f"({exc.strerror or exc})", parameters=[parameter]) from None
    os.close(fd)
    os.unlink(probe)
    return target
