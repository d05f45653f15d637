"""Names shared by every part of the product: modalities, regions, metrics, sites, splits."""

MODALITIES = ("t1ce", "t1", "t2", "flair")
"""Input channel order of the model (BraTS file suffixes)."""

LABEL_SUFFIX = "seg"
BRATS_LABELS = (0, 1, 2, 4)
"""BraTS 2018 label values: background, necrotic/non-enhancing core, oedema, enhancing tumour."""

BRATS_FORMAT, MSD_FORMAT = "brats", "msd"
DATA_FORMATS = (BRATS_FORMAT, MSD_FORMAT)
"""Layouts of a case: BraTS 2018 (one file per modality) or the Medical Segmentation Decathlon's Task01_BrainTumour
(one 4D image). A datalist entry in the MSD layout says ``"format": "msd"``."""
MSD_CHANNELS = ("flair", "t1", "t1ce", "t2")
"""Channels of an MSD Task01 4D image, in its order (dataset.json: FLAIR, T1w, t1gd, T2w), named as in MODALITIES."""
MSD_CHANNEL_NAMES = ("FLAIR", "T1w", "t1gd", "T2w")
"""The ``modality`` names of MSD Task01's dataset.json, channel by channel."""
MSD_LABELS = (0, 1, 2, 3)
"""MSD Task01 label values: background, oedema, non-enhancing tumour, enhancing tumour."""
MSD_TO_BRATS_LABELS = {0: 0, 1: 2, 2: 1, 3: 4}
"""MSD Task01 label -> BraTS label of the same tissue: TC = MSD 2+3, WT = 1+2+3, ET = 3."""

REGIONS = ("TC", "WT", "ET")
"""Output channels: tumour core (1+4), whole tumour (1+2+4), enhancing tumour (4)."""

CLICK_REGIONS = tuple(r.lower() for r in REGIONS)
"""Region names of a click (``tc``, ``wt``, ``et``)."""
INTERACTIVE_CHANNELS = len(MODALITIES) + 3 * len(REGIONS)
"""Input channels of the interactive model: the modalities, the starting segmentation (TC, WT, ET) and a positive
and a negative click map per region."""

DICE, HD95 = "dice", "hd95"
SENSITIVITY, SPECIFICITY = "sensitivity", "specificity"
"""Recall TP / (TP + FN) and TN / (TN + FP) of a region over every voxel of the grid scored, as FeTS reports them."""


def metric_name(metric: str, region: str) -> str:
    """The one name of a score of a region, everywhere (a site's metrics, the cross-site results, reports, CSVs):
    ``dice_tc``, ``hd95_et``."""
    return f"{metric}_{region.lower()}"


DICE_METRICS = tuple(metric_name(DICE, r) for r in REGIONS)
HD95_METRICS = tuple(metric_name(HD95, r) for r in REGIONS)
"""HD95 in mm of each region (a site measures it on the grid it evaluates: its cases resampled to ``pixdim``)."""
SENSITIVITY_METRICS = tuple(metric_name(SENSITIVITY, r) for r in REGIONS)
SPECIFICITY_METRICS = tuple(metric_name(SPECIFICITY, r) for r in REGIONS)
SCORE_METRICS = DICE_METRICS + HD95_METRICS + SENSITIVITY_METRICS + SPECIFICITY_METRICS
"""Every score of a region of a case, in this order: what a site averages and keeps per case, the columns of
``fedbrats evaluate``."""
MEAN_DICE = "mean_dice"
"""Key metric of the product: mean Dice over REGIONS."""
N_CASES = "n_cases"
CASES_WITH, EMPTY_BOTH, DICE_WITH = "cases_with", "empty_both", "dice_with"
"""Per region, over a site's cases (``cases_with_et``, ...): how many have the region in the reference, how many have
it in neither the reference nor the prediction (scored Dice 1 by the BraTS rule), and the mean Dice over the cases
that have it (None when none has)."""
REGION_COUNTS = tuple(metric_name(m, r) for m in (CASES_WITH, EMPTY_BOTH, DICE_WITH) for r in REGIONS)
PRESENT = "present"
"""Per case (``present_et``): 1 when the reference holds the region; aggregated into :data:`REGION_COUNTS`, never
sent per case."""
PER_CASE = "per_case"
"""Key of the per-case values in a site's metrics: ``{metric name: [one number per case]}``, no case names."""

SPLITS = ("training", "validation", "testing")

GRADES = ("HGG", "LGG")
"""Glioma grades of BraTS 2018: high-grade (glioblastoma) and lower-grade."""
BRATS18_GRADE_COUNTS = {"HGG": 210, "LGG": 75}
"""Cases of each grade among the 285 BraTS 2018 training cases."""
SITE_GRADES = {"site-1": "HGG", "site-2": "LGG"}
"""Reference federation: site-1 holds high-grade, site-2 low-grade gliomas."""
CENTRAL_SITE = "site-All"
REFERENCE_SPLIT_SIZES = {"site-1": (144, 30, 36), "site-2": (56, 12, 7)}
"""(training, validation, testing) cases per site in the reference split of BraTS 2018."""

MALLOC_TUNING_ENV = "FEDBRATS_MALLOC_TUNING"
"""Set to 0, the product leaves glibc's allocator settings at their defaults in every process it starts or runs in."""
