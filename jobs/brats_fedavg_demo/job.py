"""brats_fedavg_demo: CPU demo of brats_fedavg on two synthetic sites (HGG-like, LGG-like), 6 rounds.

python jobs/brats_fedavg_demo/job.py                                           # simulator, synthetic sites
python jobs/brats_fedavg_demo/job.py --env poc                                 # running POC system
python jobs/brats_fedavg_demo/job.py --export --export-dir workspace/jobs      # native job folder
"""

from fedbrats.tools.job_script import main

if __name__ == "__main__":
    main("brats_fedavg_demo", __doc__)
