"""brats_fedavg_demo: brats_fedavg for a CPU. Two synthetic sites (HGG-like and LGG-like cases at 2 mm), 6 rounds
of the CPU recipe on 32^3 crops; what the quickstart runs.

  python jobs/brats_fedavg_demo/job.py                                           # FLARE's simulator, synthetic sites
  python jobs/brats_fedavg_demo/job.py --env poc                                 # the POC system running here
  python jobs/brats_fedavg_demo/job.py --export --export-dir workspace/jobs      # the native job folder
"""

from typing import Optional

from fedbrats.federation.entry import run_job
from fedbrats.federation.recipe import BratsFedAvgRecipe
from fedbrats.federation.training import DEMO_TRAINING


def recipe(overrides: Optional[dict] = None) -> BratsFedAvgRecipe:
    """The recipe of brats_fedavg (FedAvg with in-time best-model selection, then cross-site evaluation) with the
    CPU recipe's training. ``overrides`` (the command line's) replace the values below."""
    return BratsFedAvgRecipe(
        name="brats_fedavg_demo",
        description="CPU demo of brats_fedavg on synthetic sites: the CPU recipe on 32^3 crops, 75 steps a round",
        sites=["site-1", "site-2"],
        min_clients=2,
        num_rounds=6,
        training=DEMO_TRAINING,  # 3 mm voxels, 32^3 crops centred on tumour half of the time, Dice + BCE, cosine rate
        eval_split="testing",
        privacy="none",
        synthetic_cases=10,  # cases per synthetic site the simulator makes when no data root is given
        overrides=overrides,
    )


if __name__ == "__main__":
    run_job(recipe, __doc__)
