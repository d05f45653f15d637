"""Datasets and loaders of one site's datalist: the deterministic preprocessing cached compact, background workers."""

import contextlib
import logging
import math
import multiprocessing
from typing import Iterator, List, Sequence

from monai.data import DataLoader, Dataset
from monai.transforms import Compose

from fedbrats.runtime.data.cache import CachedCases, CachePlan, available_memory
from fedbrats.runtime.data.compact import CompactCased
from fedbrats.runtime.data.datalist import resolve_datalist
from fedbrats.runtime.data.transforms import after_cache_transforms, eval_transforms, train_transforms
from fedbrats.runtime.errors import BratsDataError
from fedbrats.runtime.settings import TrainSettings

logger = logging.getLogger(__name__)


def root_data_error(exc: BaseException):
    """The BratsDataError behind an exception raised by MONAI's transform machinery, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, BratsDataError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def unwrapped(exc: BaseException) -> BaseException:
    """The BratsDataError behind ``exc`` as itself (MONAI wraps it in its own errors), or ``exc``."""
    cause = root_data_error(exc)
    if cause is None or cause is exc:
        return exc
    error = BratsDataError(str(cause))
    error.case, error.path = cause.case, cause.path
    return error


@contextlib.contextmanager
def data_errors() -> Iterator[None]:
    """Re-raise a BratsDataError wrapped by MONAI as itself, so the user sees one clear message."""
    try:
        yield
    except BratsDataError:
        raise
    except Exception as e:
        error = unwrapped(e)
        if error is e:
            raise
        raise error from None


class TrainingCrops(Dataset):
    """Training crops of a site's cases: a kept case restored and cropped (``transform``), any other cropped from its
    files by ``from_files`` (:func:`~.transforms.train_transforms`), which decodes it once without the cache's
    whole-volume preprocessing."""

    def __init__(self, cases: CachedCases, transform: Compose, from_files: Compose):
        super().__init__(cases, transform)
        self.from_files = from_files

    def _transform(self, index: int):
        if index < len(self.data.cache):
            return self.transform(self.data.cache[index])
        return self.from_files(dict(self.data.entries[index]))


def make_dataset(entries: List[dict], settings: TrainSettings, train: bool, memory_share: float = 1.0) -> Dataset:
    """The cases of ``entries`` as a loader takes them: preprocessed, kept compact as far as ``settings.cache_rate``
    (or, for ``auto``, ``memory_share`` of the memory) allows and restored to float32 after the cache; random training
    crops when ``train``. A case that is not kept is preprocessed on every use and never compacted; for training, only
    its crop is normalised and augmented (:class:`TrainingCrops`)."""
    available = available_memory() if memory_share < 1 else None
    available = int(available * memory_share) if available is not None else None
    plan = CachePlan.from_rate(settings.cache_rate, len(entries), available)
    with data_errors():
        cases = CachedCases(entries, eval_transforms(settings), plan, keep=CompactCased())
    logger.info("%s", cases.summary())
    if train:
        return TrainingCrops(cases, after_cache_transforms(settings, train), train_transforms(settings))
    return Dataset(cases, after_cache_transforms(settings, train))


def cache_summary(dataset: Dataset) -> str:
    """What the cache of a dataset of :func:`make_dataset` holds (or a loader's), in one line."""
    dataset = getattr(dataset, "dataset", dataset)
    cases = getattr(dataset, "data", None)
    return cases.summary() if isinstance(cases, CachedCases) else "no cache"


def make_loader(dataset: Dataset, settings: TrainSettings, train: bool) -> DataLoader:
    """Batches of ``dataset``; ``num_workers`` background processes prepare them while the model trains.

    Workers are forked where the platform can, so that they share the cache of the site's process instead of copying
    it, and persist across epochs and rounds."""
    workers = settings.num_workers
    context = "fork" if workers > 0 and "fork" in multiprocessing.get_all_start_methods() else None
    return DataLoader(
        dataset,
        batch_size=settings.batch_size if train else 1,
        shuffle=train,
        num_workers=workers,
        persistent_workers=workers > 0,
        multiprocessing_context=context,
    )


def rank_share(entries: Sequence, rank: int = 0, world_size: int = 1) -> list:
    """The cases one of ``world_size`` training processes takes: every ``world_size``-th from the ``rank``-th, the
    list first padded with its own first cases so that every rank has as many (as PyTorch's ``DistributedSampler``
    pads). Each rank keeps and shuffles only its share; together the ranks cover every case in each pass."""
    entries = list(entries)
    if world_size <= 1 or not entries:
        return entries
    padded = [entries[i % len(entries)] for i in range(math.ceil(len(entries) / world_size) * world_size)]
    return padded[rank::world_size]


def site_loader(
    datalist: str, data_root: str, split: str, settings: TrainSettings, train: bool, rank: int = 0, world_size: int = 1
) -> DataLoader:
    """Loader of one split: random crops and augmentation when ``train``, whole volumes otherwise. With several
    training processes (``world_size``), a training loader holds the :func:`rank_share` of ``rank``, and an
    automatic cache takes that share of the memory."""
    entries = resolve_datalist(datalist, split, data_root)
    if train and world_size > 1:
        entries = rank_share(entries, rank, world_size)
        return make_loader(make_dataset(entries, settings, train, 1.0 / world_size), settings, train)
    return make_loader(make_dataset(entries, settings, train), settings, train)
