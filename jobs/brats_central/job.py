"""brats_central: the centralised baseline as a FLARE job. One site, site-All, trains on the union of the
reference sites' cases, with the same recipe and evaluation as brats_fedavg.

  python jobs/brats_central/job.py --data-root /data/brats18 --gpu 0             # FLARE's simulator
  python jobs/brats_central/job.py --env prod --startup-kit KIT                  # a provisioned system
  python jobs/brats_central/job.py --export --export-dir workspace/jobs          # the native job folder
"""

from typing import Optional

from fedbrats.federation.entry import run_job
from fedbrats.federation.recipe import BratsFedAvgRecipe
from fedbrats.federation.training import REFERENCE_TRAINING


def recipe(overrides: Optional[dict] = None) -> BratsFedAvgRecipe:
    """The recipe of brats_fedavg with one site: FedAvg of one site is that site's training, validated and kept in
    time as the federation's. ``overrides`` (the command line's) replace the values below."""
    return BratsFedAvgRecipe(
        name="brats_central",
        description="Centralised baseline as a FLARE job: one site trains on the union datalist site-All",
        sites=["site-All"],
        min_clients=1,
        num_rounds=600,
        datalist="datalists/site-All.json",  # both reference sites' cases
        training=REFERENCE_TRAINING,  # crops of 224 x 224 x 144, init_filters 16, one local epoch a round
        eval_split="testing",
        privacy="none",
        overrides=overrides,
    )


if __name__ == "__main__":
    run_job(recipe, __doc__)
