"""Running under `torchrun`: one process per device, torch.distributed between them.

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK (and the rendezvous address); aegen reads them,
joins the process group (gloo on the CPU, NCCL on CUDA) and otherwise behaves as one process:
without torchrun (or with one process) nothing here does anything. Rank 0 writes what is shared
(checkpoints, grids, videos, reports) and shows progress; a failure on one rank ends every rank
with a one-line message instead of a hang.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import inspect
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.modules.batchnorm import _BatchNorm

from .console import Reporter
from .devices import pick_device
from .errors import AegenError
from .launcher import PeerFailure, launched  # noqa: F401  (PeerFailure: re-exported)
from .settings import with_fields
from .syncbn import GlobalBatchNorm


class _RankReporter(Reporter):
    """The reporter of a rank other than 0: says nothing, so the log is read once."""

    def __init__(self) -> None:
        super().__init__(quiet=True)

    def warn(self, message: str) -> None:
        pass


@dataclass
class Context:
    """Where this process stands in the run: rank, world size, and the groups to talk on."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    group: Any = None  # the default group (gloo or NCCL)
    cpu_group: Any = None  # gloo, for Python objects and barriers whatever the device
    _bn_group: Any = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes shared files and talks to the user."""
        return self.rank == 0

    def reporter(self, reporter: Reporter) -> Reporter:
        """`reporter` on rank 0, a silent one elsewhere."""
        return reporter if self.main else _RankReporter()

    def barrier(self) -> None:
        if self.active:
            with translate_failures(self):
                dist.barrier(group=self.cpu_group)

    def agree(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (a random seed must be the same everywhere)."""
        if not self.active:
            return value

        box = [value]
        with translate_failures(self):
            dist.broadcast_object_list(box, src=0, group=self.cpu_group)
        return box[0]

    def mean(self, value):
        """The mean of a tensor over ranks (every rank gets it)."""
        if not self.active:
            return value

        with translate_failures(self):
            dist.all_reduce(value, op=dist.ReduceOp.SUM, group=self.group)
        return value / self.world

    def gather(self, part, indices: Sequence[int], n: int, to_all: bool = False):
        """Put each rank's rows (`part`, rows `indices` of a batch of `n`) into one (n, ...)
        tensor on the CPU: on rank 0 (None elsewhere), or on every rank with `to_all`."""

        part = part.detach().cpu()
        if not self.active:
            return part
        mine = (list(indices), part)
        with translate_failures(self):
            if to_all:
                pieces: list[Any] = [None] * self.world
                dist.all_gather_object(pieces, mine, group=self.cpu_group)
            else:
                pieces = [None] * self.world if self.main else None
                dist.gather_object(mine, pieces, dst=0, group=self.cpu_group)
        if pieces is None:
            return None
        full = torch.empty((n, *part.shape[1:]), dtype=part.dtype)  # ranks' rows share a shape
        for rows, values in pieces:
            if rows:
                full[torch.tensor(rows)] = values
        return full

    def batchnorm_group(self):
        """A group of its own for synchronised batch norm, so its collectives never interleave
        with DDP's gradient buckets."""
        if self._bn_group is None:
            self._bn_group = dist.new_group(backend=dist.get_backend(self.group))
        return self._bn_group


SINGLE = Context()

_current: contextvars.ContextVar[Context] = contextvars.ContextVar("aegen_context", default=SINGLE)


def current() -> Context:
    """The distributed context of the task running now (one process: `SINGLE`)."""
    return _current.get()


def task(settings_kind: type) -> Any:
    """Make a function a library task, run in the torchrun session (one process: as it is).

    The function takes `settings` (of `settings_kind`), `runtime` (a `Runtime`), `reporter`
    and `**fields`. Before it runs: keyword fields are applied to its settings and runtime
    (`generate_files(ckpt, outputs, n=4, device="cpu")`), the session is joined on the
    runtime's device (each rank taking its own GPU), the reporter is silenced on ranks other
    than 0, and `current()` gives the task its context. Every task that can run under torchrun
    enters the session here, and only here."""

    def wrap(fn: Any) -> Any:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            call = signature.bind(*args, **kwargs)
            given = call.arguments
            settings, runtime = with_fields(
                given.get("settings"), settings_kind, given.get("runtime"),
                given.pop("fields", {}), fn.__name__,
            )
            settings.check()
            runtime.check()
            where = runtime.device
            if launched():  # the device picks the backend
                where = pick_device(runtime.device)
            with session(where) as ctx:
                given["settings"] = settings
                given["runtime"] = dataclasses.replace(runtime, device=device_for(where, ctx))
                given["reporter"] = ctx.reporter(given.get("reporter") or Reporter(quiet=True))
                token = _current.set(ctx)
                try:
                    return fn(*call.args, **call.kwargs)
                finally:
                    _current.reset(token)

        return run

    return wrap


def device_for(device, ctx: Context):
    """Under torchrun each process takes its own GPU: cuda becomes cuda:LOCAL_RANK."""
    if not ctx.active:
        return device

    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", ctx.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


_COMMUNICATION = ("gloo", "nccl", "c10d", "connection", "timed out", "timeout", "socket")


def _lost_peer(exc: BaseException) -> bool:
    """Whether an exception is torch.distributed failing to talk, not a bug in the model."""

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(word in text for word in _COMMUNICATION)


@contextlib.contextmanager
def translate_failures(ctx: Context) -> Iterator[None]:
    """A collective that fails because a peer died becomes one clear PeerFailure."""
    try:
        yield
    except AegenError:
        raise
    except Exception as exc:
        if not ctx.active or not _lost_peer(exc):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise PeerFailure(
            f"rank {ctx.rank} of {ctx.world}: another process of this run failed or was "
            f"stopped ({type(exc).__name__}: {first})"
        ) from None


@contextlib.contextmanager
def session(device) -> Iterator[Context]:
    """Join the torchrun process group for the length of a command (or use the one the caller
    already set up); outside torchrun, yield a one-process context and do nothing."""

    if dist.is_available() and dist.is_initialized():
        world = dist.get_world_size()
        if world == 1:
            yield SINGLE
            return
        yield _context(dist, int(os.environ.get("LOCAL_RANK", "0") or 0))
        return
    if not launched():
        yield SINGLE
        return
    if not dist.is_available():
        raise AegenError("this PyTorch has no torch.distributed, so it cannot run under torchrun")
    backend = "nccl" if device.type == "cuda" else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    try:
        dist.init_process_group(backend)
    except Exception as exc:  # a rendezvous that cannot be reached, a missing backend
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise AegenError(f"cannot join the torchrun process group ({backend}): {first}") from None
    ctx = _context(dist, local_rank)
    failed = True
    try:
        with translate_failures(ctx):
            yield ctx
        failed = False
    finally:
        if not failed:  # after a failure the peers may be gone: just leave
            with contextlib.suppress(Exception):
                dist.barrier(group=ctx.cpu_group)  # no rank leaves while another still talks
                dist.destroy_process_group()


def _context(dist, local_rank: int) -> Context:
    group = dist.group.WORLD
    cpu_group = group if dist.get_backend(group) == "gloo" else dist.new_group(backend="gloo")
    return Context(
        rank=dist.get_rank(),
        world=dist.get_world_size(),
        local_rank=local_rank,
        group=group,
        cpu_group=cpu_group,
    )


# --- synchronised batch norm -----------------------------------------------------------------


def sync_batchnorm(model, ctx: Context):
    """Batch norm layers that normalise with the statistics of the whole batch across ranks.

    On CUDA this is torch.nn.SyncBatchNorm. PyTorch refuses SyncBatchNorm on CPU modules
    ("SyncBatchNorm layers only work with GPU modules"), so on the CPU each layer becomes a
    GlobalBatchNorm: the same state_dict keys, statistics all-reduced over gloo with autograd.
    """

    if not ctx.active:
        return model
    if next(model.parameters()).device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model, process_group=ctx.group)
    return _convert(model, ctx.batchnorm_group())


def _convert(module, group):
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        return GlobalBatchNorm(module, group)
    for name, child in module.named_children():
        replaced = _convert(child, group)
        if replaced is not child:
            setattr(module, name, replaced)
    return module
