"""Datasets and loaders of one site's datalist, with caching of the deterministic preprocessing."""

import contextlib
from typing import Iterator, List

from monai.data import CacheDataset, DataLoader, Dataset

from .datalist import resolve_datalist
from .errors import BratsDataError
from .settings import TrainSettings
from .transforms import eval_transforms, train_transforms


def root_data_error(exc: BaseException):
    """The BratsDataError behind an exception raised by MONAI's transform machinery, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, BratsDataError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def data_errors() -> Iterator[None]:
    """Re-raise a BratsDataError wrapped by MONAI as itself, so the user sees one clear message."""
    try:
        yield
    except BratsDataError:
        raise
    except Exception as e:
        cause = root_data_error(e)
        if cause is None:
            raise
        error = BratsDataError(str(cause))
        error.case, error.path = cause.case, cause.path
        raise error from None


def make_dataset(entries: List[dict], transform, settings: TrainSettings) -> Dataset:
    with data_errors():
        if settings.cache_rate > 0:
            return CacheDataset(
                entries, transform, cache_rate=settings.cache_rate, num_workers=None, progress=False, copy_cache=False
            )
        return Dataset(entries, transform)


def site_loader(datalist: str, data_root: str, split: str, settings: TrainSettings, train: bool) -> DataLoader:
    """Loader of one split: random crops and augmentation when ``train``, whole volumes otherwise."""
    entries = resolve_datalist(datalist, split, data_root)
    transform = train_transforms(settings) if train else eval_transforms(settings)
    dataset = make_dataset(entries, transform, settings)
    return DataLoader(
        dataset,
        batch_size=settings.batch_size if train else 1,
        shuffle=train,
        num_workers=settings.num_workers,
        persistent_workers=settings.num_workers > 0,
    )
