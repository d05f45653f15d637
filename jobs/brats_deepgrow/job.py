"""brats_deepgrow: the Deepgrow-style interactive model (the four modalities, a starting segmentation and click maps
per region in), trained federated on two synthetic sites with simulated clicks; each site validates with Dice after
5 clicks per region, which selects the best global model (docs/interactive.md).

  python jobs/brats_deepgrow/job.py                                        # FLARE's simulator, synthetic sites
  python jobs/brats_deepgrow/job.py --env poc                              # the POC system running here
  python jobs/brats_deepgrow/job.py --export --export-dir workspace/jobs   # the native job folder
  fedbrats clicks workspace/sim/brats_deepgrow/server/simulate_job/app_server/best_FL_global_model.pt \\
      --site-data workspace/sim/sites.json                                 # Dice against clicks, NoC@85 and NoC@90
"""

from typing import Optional

from fedbrats.federation.entry import run_job
from fedbrats.federation.recipe import BratsFedAvgRecipe
from fedbrats.federation.training import DEEPGROW_TRAINING


def recipe(overrides: Optional[dict] = None) -> BratsFedAvgRecipe:
    """The recipe of brats_fedavg (FedAvg with in-time best-model selection, then cross-site evaluation) with the
    interactive model's training. ``overrides`` (the command line's) replace the values below."""
    return BratsFedAvgRecipe(
        name="brats_deepgrow",
        description="Deepgrow-style interactive model trained federated with simulated clicks on synthetic sites",
        sites=["site-1", "site-2"],
        min_clients=2,
        num_rounds=8,
        training=DEEPGROW_TRAINING,  # 32^3 crops, 0 to 4 rounds of clicks a step, validated after 5 clicks a region
        eval_split="testing",
        privacy="none",
        synthetic_cases=10,  # cases per synthetic site the simulator makes when no data root is given
        overrides=overrides,
    )


if __name__ == "__main__":
    run_job(recipe, __doc__)
