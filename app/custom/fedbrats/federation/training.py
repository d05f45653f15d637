"""Training presets of the jobs and the study: :class:`~fedbrats.runtime.settings.TrainSettings` fields that differ
from the settings' defaults (the reference training of SegResNetVAE)."""

REFERENCE_TRAINING = {"crop": [224, 224, 144], "init_filters": 16, "local_epochs": 1, "num_workers": 4}
"""Training of the published reference run: whole-brain-sized crops, init_filters 16, one local epoch per round; 4
background loader processes per split keep a GPU fed (docs/benchmarks.md)."""

CPU_RECIPE = {
    "crop": [48, 48, 48],
    "pixdim": 3.0,
    "crop_sampling": "tumour",
    "init_filters": 8,
    "batch_size": 2,
    "loss": "dice_bce",
    "learning_rate": 2e-3,
    "lr_schedule": "cosine",
    "local_steps": 25,
    "et_min_volume": 500.0,
    "sw_roi": [80, 80, 56],
    "num_threads": 1,
}
"""Training that learns on a CPU in minutes (docs/training.md): 3 mm voxels, 48^3 crops centred on tumour half of the
time, batch 2 (PyTorch takes its fast oneDNN convolutions only for batches above 1 on CPU), Dice smoothed by 1 + BCE,
Adam 2e-3 decaying along a cosine over the rounds, one whole-volume window for validation, and a small-ET rule of
500 mm^3."""

DEMO_TRAINING = {**CPU_RECIPE, "crop": [32, 32, 32], "local_steps": 75}
"""The quickstart's training: the CPU recipe on 32^3 crops, with three times the steps a round (docs/training.md)."""

STUDY_TRAINING = {**CPU_RECIPE, "crop": [32, 32, 32], "sw_roi": [32, 32, 32], "sw_overlap": 0.25, "sw_batch_size": 4}
"""The accuracy study's training: the CPU recipe on 32^3 crops, validated in windows of the crop's size, four at a
time (docs/training.md)."""

DEEPGROW_TRAINING = {
    **CPU_RECIPE,
    "crop": [32, 32, 32],
    "local_steps": 40,
    "et_min_volume": 0.0,
    "interactive": True,
    "max_clicks": 4,
    "eval_clicks": 5,
}
"""The interactive model's training (brats_deepgrow): the CPU recipe on 32^3 crops, each step after 0 to 4 rounds of
simulated clicks, validated after 5 clicks per region; no small-ET rule (a click decides what is ET)."""
