"""Federated brain-tumour segmentation (BraTS, SegResNetVAE) on NVIDIA FLARE and MONAI.

The package by stage, from what a site runs to what only a user's machine runs:

- ``runtime``: what every job ships in its ``custom/`` folder and the server and sites run: settings, the data
  pipeline, the model, the training engine, the metrics and the FLARE components (``runtime.fl``).
- ``prepare``: data preparation: synthetic sites, the reference, institution and MSD splits, data checks.
- ``evaluation``: segmenting cases with a trained model, scoring segmentations, the cross-site report, the model
  card and exports.
- ``federation``: job wiring: job definitions, the recipe that writes a FLARE job, where a job runs, privacy filters,
  resuming a run.
- ``runners``: running a federation or a training on this machine: simulator, POC, quickstart, training without FLARE.
- ``research``: measurements that write ``docs/``: the accuracy study, benchmarks, the soak, the privacy cost.

Each stage imports only the stages above it in this list; ``fedbrats.cli`` is the ``fedbrats`` command.
"""

__version__ = "0.1.0"
