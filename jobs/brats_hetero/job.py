"""brats_hetero: four unequal institutions, each with its own tumour grades and its own scanner (synthetic sites:
40, 24, 16 and 8 training cases), for comparing aggregation methods where FedAvg drifts.

  python jobs/brats_hetero/job.py                                   # FLARE's simulator, synthetic sites
  python jobs/brats_hetero/job.py --algorithm scaffold              # fedavg, fedprox, fedopt, scaffold or ditto
  python jobs/brats_hetero/job.py --env poc                         # the POC system running here
  python jobs/brats_hetero/job.py --export --export-dir workspace/jobs
"""

from typing import Optional

from fedbrats.federation.entry import run_job
from fedbrats.federation.recipe import BratsFedAvgRecipe
from fedbrats.federation.training import STUDY_TRAINING


def recipe(overrides: Optional[dict] = None) -> BratsFedAvgRecipe:
    """The recipe of brats_fedavg (in-time best-model selection, then cross-site evaluation) over four sites with
    the study's CPU training. ``overrides`` (the command line's) replace the values below."""
    return BratsFedAvgRecipe(
        name="brats_hetero",
        description="Four unequal synthetic institutions with their own grades and scanner profiles",
        sites=["site-1", "site-2", "site-3", "site-4"],
        # NAME:GRADE:SCANNER PROFILE:CASES of each site's synthetic data (docs/data.md, "Scanner profiles")
        synthetic_sites=[
            "site-1:HGG:reference:56",
            "site-2:mix:clinical-1.5t:34",
            "site-3:LGG:gain-bias:22",
            "site-4:mix:noisy:12",
        ],
        synthetic_cases=12,  # the simulator makes synthetic sites when no data root is given (counts as above)
        min_clients=4,  # a round waits for every site
        num_rounds=20,
        algorithm="fedavg",  # or fedprox, fedopt, scaffold, ditto (--algorithm, --algorithm-arg NAME=VALUE)
        training=STUDY_TRAINING,  # 3 mm voxels, 32^3 crops, 25 steps a round
        eval_split="testing",
        privacy="none",
        overrides=overrides,
    )


if __name__ == "__main__":
    run_job(recipe, __doc__)
