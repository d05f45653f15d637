"""A site's case cache: compact preprocessed cases kept in memory, as many as the settings or the memory allow.

``cache_rate`` in the training settings is the share of a split's cases kept, or ``auto``: cases are cached in order,
each measured as it is cached, until the next one would take the cache past :data:`CACHE_SHARE` of the memory that
was available when filling began (``MemAvailable`` of ``/proc/meminfo``, or what is left under the process's cgroup
limit when that is less). The rest is decoded whenever it is used.
"""

import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Callable, Dict, List, Optional, Sequence, Union

from torch.utils.data import Dataset

from fedbrats.runtime.data.compact import tensor_bytes
from fedbrats.runtime.settings import AUTO, cache_rate_value

logger = logging.getLogger(__name__)

CACHE_SHARE = 0.5
"""Share of the available memory that one split's automatic cache may take; the rest is left to training, the
loader's workers, the other splits and other processes."""
FILL_THREADS = 8
"""Most threads that decode cases while a cache fills."""
MIB, GIB = 2**20, 2**30
_CGROUP_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
)


def _read_int(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _meminfo(name: str) -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(f"{name}:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory() -> Optional[int]:
    """Bytes of memory this process can still take: the system's available memory, or less when a cgroup (container)
    limit leaves less; None where neither can be read."""
    available = _meminfo("MemAvailable")
    if available is None:
        try:
            import psutil

            available = int(psutil.virtual_memory().available)
        except (ImportError, OSError):
            return None
    total = _meminfo("MemTotal") or available
    for limit_file, usage_file in _CGROUP_FILES:
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < total:
            available = min(available, max(limit - usage, 0))
            break
    return available


@dataclass
class CachePlan:
    """How many of a split's cases to cache: the first ``limit`` of ``cases``, within ``budget`` bytes (None: no
    limit in bytes), as ``rate`` (the setting) says."""

    cases: int
    limit: int
    rate: Union[str, float] = AUTO
    budget: Optional[int] = None
    available: Optional[int] = None

    @classmethod
    def from_rate(cls, cache_rate: Union[str, float], cases: int, available: Optional[int] = None) -> "CachePlan":
        """The plan of ``cache_rate`` (``auto`` or a share); ``available`` bytes default to :func:`available_memory`."""
        rate = cache_rate_value(cache_rate)
        if rate != AUTO:
            return cls(cases, int(cases * rate), rate)
        available = available_memory() if available is None else available
        if available is None:
            return cls(cases, cases, rate)
        return cls(cases, cases, rate, int(available * CACHE_SHARE), available)

    def describe(self) -> str:
        if self.rate != AUTO:
            return f"cache_rate {self.rate:g}: the first {self.limit} of {self.cases} cases"
        if self.budget is None:
            return "cache_rate auto, available memory unknown: every case"
        return (
            f"cache_rate auto: up to {self.budget / GIB:.1f} GiB, {CACHE_SHARE:.0%} of the "
            f"{self.available / GIB:.1f} GiB of memory available"
        )


class CachedCases(Dataset):
    """Cases made by ``transform``: the first ones kept as ``keep`` makes them of it (as they are without ``keep``),
    the others made again on every use.

    Filling makes cases in up to ``threads`` threads and keeps them in order while they fit the plan;
    ``cached_bytes`` is what the kept cases hold.
    """

    def __init__(
        self,
        entries: Sequence[dict],
        transform: Callable[[dict], dict],
        plan: CachePlan,
        keep: Optional[Callable[[dict], dict]] = None,
        threads: int = 0,
    ):
        self.entries = list(entries)
        self.transform = transform
        self.keep = keep
        self.plan = plan
        self.cache: List[Dict] = []
        self.cached_bytes = 0
        self._fill(threads or min(FILL_THREADS, os.cpu_count() or 1))

    def _fill(self, threads: int) -> None:
        """Make the cases of the plan in order, at most ``threads`` at a time, keeping each while the budget lasts."""
        wanted = iter(self.entries[: self.plan.limit])
        with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
            pending = deque(pool.submit(self._kept, e) for e in islice(wanted, threads))
            try:
                while pending:
                    item = pending.popleft().result()
                    size = tensor_bytes(item)
                    if self.plan.budget is not None and self.cached_bytes + size > self.plan.budget:
                        break
                    self.cache.append(item)
                    self.cached_bytes += size
                    pending.extend(pool.submit(self._kept, e) for e in islice(wanted, 1))
            finally:
                for future in pending:
                    future.cancel()

    def _kept(self, entry: dict) -> dict:
        item = self.transform(dict(entry))
        return self.keep(item) if self.keep is not None else item

    def summary(self) -> str:
        """One line: what was cached, in how much memory, and the rule that chose it."""
        n = len(self.cache)
        each = f", {self.cached_bytes / n / MIB:.1f} MiB a case" if n else ""
        return (
            f"cached {n} of {len(self.entries)} cases in {self.cached_bytes / GIB:.2f} GiB{each} "
            f"({self.plan.describe()})"
        )

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Dict:
        if index < len(self.cache):
            return self.cache[index]
        return self.transform(dict(self.entries[index]))
