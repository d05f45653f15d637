"""brats_eval: given models scored on every site, without training; the same cross-site report as a training job's
(Dice, HD95, sensitivity and specificity per site and case-weighted).

  python jobs/brats_eval/job.py --model M.pt [--model M2.pt ...]                # FLARE's simulator, synthetic sites
  python jobs/brats_eval/job.py --model M.pt --data-root /data/brats18          # the simulator on real data
  python jobs/brats_eval/job.py --model M.pt --env poc                          # the POC system running here
  python jobs/brats_eval/job.py --model M.pt --export --export-dir workspace/jobs  # the native job folder

A model of another network than the quickstart's needs the settings it was trained with, e.g.
``--crop 224 224 144 --init-filters 16`` for brats_fedavg's, or ``--settings SETTINGS.json``.
"""

from typing import Optional

from fedbrats.federation.entry import run_job
from fedbrats.federation.eval_recipe import BratsEvalRecipe
from fedbrats.federation.training import DEMO_TRAINING


def recipe(overrides: Optional[dict] = None) -> BratsEvalRecipe:
    """Server: FLARE's ``CrossSiteModelEval`` (no submit_model task) over ``GivenModelLocator``, which serves the
    model files the job carries; FLARE's ``ValidationJsonGenerator`` writes the results. Sites: ``BratsExecutor``'s
    ``validate`` task on ``eval_split``. ``overrides`` (the command line's) replace the values below;
    ``overrides["models"]`` (``--model``) names the model files."""
    return BratsEvalRecipe(
        name="brats_eval",
        description="Given models scored on every site's testing cases, without training",
        sites=["site-1", "site-2"],  # their datalists: datalists/<site>.json, relative to each site's data root
        min_clients=2,  # the job starts once both sites are there
        training=DEMO_TRAINING,  # the models' network and validation: the quickstart's (32^3 crops, init_filters 8)
        eval_split="testing",  # the cases every model is scored on
        synthetic_cases=10,  # cases per synthetic site the simulator makes when no data root is given
        overrides=overrides,
    )


if __name__ == "__main__":
    run_job(recipe, __doc__)
