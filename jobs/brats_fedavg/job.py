"""brats_fedavg: the reference federation. FedAvg of SegResNetVAE on BraTS 2018, 600 rounds, site-1 holding
high-grade and site-2 low-grade gliomas; every model then scored on every site.

  python jobs/brats_fedavg/job.py --data-root /data/brats18 --gpu 0,1    # FLARE's simulator
  python jobs/brats_fedavg/job.py --env poc                             # the POC system running here
  python jobs/brats_fedavg/job.py --env prod --startup-kit KIT          # a provisioned system
  python jobs/brats_fedavg/job.py --export --export-dir workspace/jobs  # the native job folder
"""

from typing import Optional

from fedbrats.federation.entry import run_job
from fedbrats.federation.recipe import BratsFedAvgRecipe
from fedbrats.federation.training import REFERENCE_TRAINING


def recipe(overrides: Optional[dict] = None) -> BratsFedAvgRecipe:
    """Server: FedAvg (``ScoredScatterAndGather``, which also scores the final global model) over the
    ``GuardedAggregator``, the best global model kept in time by ``CaseWeightedModelSelector``, then the cross-site
    evaluation. Sites: ``BratsExecutor``, training and validating on each site's own datalist. ``overrides`` (the
    command line's) replace the values below."""
    return BratsFedAvgRecipe(
        name="brats_fedavg",
        description="Reference FedAvg of SegResNetVAE on BraTS 2018: site-1 HGG, site-2 LGG",
        sites=["site-1", "site-2"],  # their datalists: datalists/<site>.json, relative to each site's data root
        min_clients=2,  # a round waits for both sites
        num_rounds=600,
        training=REFERENCE_TRAINING,  # crops of 224 x 224 x 144, init_filters 16, one local epoch a round
        eval_split="testing",  # the cases the cross-site evaluation scores every model on
        privacy="none",  # or svt, percentile, exclude: FLARE's filter on what a site sends (docs/privacy.md)
        overrides=overrides,
    )


if __name__ == "__main__":
    run_job(recipe, __doc__)
