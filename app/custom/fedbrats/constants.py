"""Names shared by every part of the product: modalities, regions, metrics, sites, splits."""

MODALITIES = ("t1ce", "t1", "t2", "flair")
"""Input channel order of the model (BraTS file suffixes)."""

LABEL_SUFFIX = "seg"
BRATS_LABELS = (0, 1, 2, 4)
"""BraTS 2018 label values: background, necrotic/non-enhancing core, oedema, enhancing tumour."""

REGIONS = ("TC", "WT", "ET")
"""Output channels: tumour core (1+4), whole tumour (1+2+4), enhancing tumour (4)."""

MEAN_DICE = "val_mean_dice"
"""Key metric of the product: mean Dice over REGIONS."""
N_CASES = "n_cases"


def region_metric(region: str, metric: str = "dice") -> str:
    """Metric name of one region, e.g. ``val_dice_tc`` or (``metric="hd95"``) ``val_hd95_tc``."""
    return f"val_{metric}_{region.lower()}"


REGION_METRICS = tuple(region_metric(r) for r in REGIONS)
HD95_METRICS = tuple(region_metric(r, "hd95") for r in REGIONS)
"""HD95 in mm of each region, on the grid the site evaluates (its cases resampled to ``pixdim``)."""
PER_CASE = "per_case"
"""Key of the per-case values in a site's metrics: ``{metric name: [one number per case]}``, no case names."""

SPLITS = ("training", "validation", "testing")

SITE_GRADES = {"site-1": "HGG", "site-2": "LGG"}
"""Reference federation: site-1 holds high-grade, site-2 low-grade gliomas."""
CENTRAL_SITE = "site-All"
REFERENCE_SPLIT_SIZES = {"site-1": (144, 30, 36), "site-2": (56, 12, 7)}
"""(training, validation, testing) cases per site in the reference split of BraTS 2018."""
