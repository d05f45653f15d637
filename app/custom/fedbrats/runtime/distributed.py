"""Data-parallel training of one site in several processes (PyTorch DDP); no FLARE in here.

The processes (ranks) are started by ``torch.distributed.run``, which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`start` joins them into a process group: NCCL on GPUs (one per rank),
gloo on CPUs. Ranks that must do the same steps :func:`agree` on every step: whether each has a batch, has stopped, or
failed; a failure in one rank then ends the task in every rank with that rank's message, instead of leaving the others
waiting in a collective. A rank that fails inside a step (in DDP's gradient exchange) leaves the group with its message
in the rendezvous store (:func:`leave`), so that the others stop waiting at once and report it.
"""

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator, Optional

import torch
import torch.distributed as dist

DEFAULT_TIMEOUT = 1800.0
"""Seconds a rank waits for the others in one collective: rank 0 validates alone while the others wait for the next
training steps, so it must exceed the site's validation time."""
OK, END, STOP, ERROR = 0, 1, 2, 3
"""What a rank reports to :func:`agree`: it has a batch, its pass is over, it stops (an abort), it failed."""
_ERROR_KEY = "error/{rank}"


class RankError(RuntimeError):
    """The failure of another rank of the site (``rank``), or the loss of the group (``rank`` None), as seen here."""

    def __init__(self, rank: Optional[int], world_size: int, message: str):
        where = f"rank {rank} of {world_size}" if rank is not None else f"the site's {world_size} processes"
        super().__init__(f"{where}: {message}")
        self.rank = rank


@dataclass
class Ranks:
    """This process's place in the site's group, and what the group's helpers need."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    timeout: float
    store: Optional[dist.Store] = None
    """The rendezvous store, where a rank that leaves the group writes its error."""
    group: Optional[object] = None
    """The gloo group of :func:`agree` (the default group on CPUs); None: the default group."""
    broken: str = ""
    """Why the group is gone; empty while it works."""


_ranks: Optional[Ranks] = None


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def in_torchrun_env() -> bool:
    """This process was started as one of several ranks (``WORLD_SIZE`` above 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: str = "auto", timeout: float = DEFAULT_TIMEOUT) -> Ranks:
    """Join the site's process group from ``torch.distributed.run``'s environment (once; later calls return it).

    ``device`` ``auto`` takes GPU ``LOCAL_RANK`` when CUDA is there (NCCL), else the CPU (gloo); ``cpu`` forces gloo.
    """
    global _ranks
    if _ranks is not None:
        return _ranks
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    on_gpu = device != "cpu" and torch.cuda.is_available()
    if on_gpu:
        if torch.cuda.device_count() < local_size:
            raise RuntimeError(
                f"{local_size} processes on this machine but {torch.cuda.device_count()} GPUs visible to them: "
                "a site runs one process per GPU"
            )
        torch.cuda.set_device(local_rank)
    pg_timeout = timedelta(seconds=timeout)
    store, rank, world_size = next(dist.rendezvous("env://", timeout=pg_timeout))
    dist.init_process_group(
        "nccl" if on_gpu else "gloo",
        store=dist.PrefixStore("default_pg", store),
        rank=rank,
        world_size=world_size,
        timeout=pg_timeout,
    )
    group = dist.new_group(backend="gloo", timeout=pg_timeout) if on_gpu else None
    _ranks = Ranks(
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        device=torch.device("cuda", local_rank) if on_gpu else torch.device("cpu"),
        timeout=timeout,
        store=dist.PrefixStore("fedbrats", store),
        group=group,
    )
    return _ranks


def stop() -> None:
    """Leave the site's group (at the end of a job): the ranks then exit without waiting on each other."""
    global _ranks
    if _ranks is not None and not _ranks.broken:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
    _ranks = None


def current() -> Optional[Ranks]:
    """The site's group when this process is one of several ranks (started here or by the caller), else None."""
    global _ranks
    if _ranks is None and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        _ranks = Ranks(dist.get_rank(), dist.get_world_size(), dist.get_rank(), torch.device("cpu"), DEFAULT_TIMEOUT)
    return _ranks


def rank() -> int:
    return current().rank if current() else 0


def world_size() -> int:
    return current().world_size if current() else 1


def is_main() -> bool:
    """Rank 0, the one that talks to FLARE, validates and writes; also a process that runs alone."""
    return rank() == 0


def local_processes() -> int:
    """Ranks of this site on this machine (1 when alone): they share its CPU cores."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", world_size())) if current() else 1


def _ensure_usable(ranks: Ranks) -> None:
    if ranks.broken:
        raise RankError(None, ranks.world_size, f"the process group broke earlier ({ranks.broken})")


def agree(status: int = OK, error: Optional[BaseException] = None) -> int:
    """Every rank calls this at the same point: returns the strongest status of all (``STOP`` over ``END`` over
    ``OK``). When a rank reports an ``error``, that rank raises it and the others raise a :class:`RankError` with its
    message. Alone, the ``error`` is raised and ``status`` returned."""
    ranks = current()
    if ranks is None:
        if error is not None:
            raise error
        return status
    _ensure_usable(ranks)
    statuses = torch.zeros(ranks.world_size, dtype=torch.int64)
    statuses[ranks.rank] = ERROR if error is not None else status
    try:
        dist.all_reduce(statuses, op=dist.ReduceOp.MAX, group=ranks.group)
        failed = [r for r, s in enumerate(statuses.tolist()) if s == ERROR]
        if failed:
            messages = [None] * ranks.world_size
            dist.all_gather_object(messages, describe(error) if error is not None else None, group=ranks.group)
    except Exception as e:  # a rank left the group, or did not answer within the timeout
        raise lost(e) from e
    if failed:
        if error is not None:
            raise error
        raise RankError(failed[0], ranks.world_size, messages[failed[0]])
    return int(statuses.max())


@contextlib.contextmanager
def together() -> Iterator[None]:
    """Run a block in every rank, then :func:`agree`: a failure of the block in one rank fails it in all."""
    error = None
    try:
        yield
    except Exception as e:
        error = e
    agree(OK, error)


def sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """``values`` summed over the ranks (as they are when alone)."""
    ranks = current()
    if ranks is None:
        return values
    values = values.clone()
    try:
        dist.all_reduce(values, group=ranks.group)
    except Exception as e:
        raise lost(e) from e
    return values


def published_error(ranks: Ranks) -> Optional[RankError]:
    """The error another rank wrote when it left the group, if any."""
    if ranks.store is None:
        return None
    for other in range(ranks.world_size):
        key = _ERROR_KEY.format(rank=other)
        try:
            if other != ranks.rank and ranks.store.check([key]):
                return RankError(other, ranks.world_size, ranks.store.get(key).decode(errors="replace"))
        except Exception:  # the store went with the process that held it
            return None
    return None


def leave(error: BaseException) -> BaseException:
    """After ``error`` inside a collective step: write it for the other ranks, leave the group (so that they stop
    waiting) and return what to raise here: the other rank's error when one failed first, else ``error``."""
    ranks = current()
    if ranks is None or ranks.broken:
        return error
    peer = published_error(ranks)
    if ranks.store is not None:
        try:
            ranks.store.set(_ERROR_KEY.format(rank=ranks.rank), describe(error))
        except Exception:
            pass  # the store is gone with the launcher: the others find the group gone without a message
    ranks.broken = str(peer or describe(error))
    with contextlib.suppress(Exception):
        dist.destroy_process_group()
    return peer or error


def lost(error: BaseException) -> RankError:
    """A collective failed: the error of the rank that left, or the loss of the group; this rank leaves it too."""
    ranks = current()
    peer = leave(error)
    if isinstance(peer, RankError):
        return peer
    return RankError(None, ranks.world_size if ranks else 1, f"lost the other ranks: {describe(error)}")
