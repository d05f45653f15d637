"""brats_fedavg: reference FedAvg of SegResNetVAE on BraTS 2018 (site-1 HGG, site-2 LGG), 600 rounds.

python jobs/brats_fedavg/job.py --data-root /data/brats18 --gpu 0,1            # simulator
python jobs/brats_fedavg/job.py --env poc                                      # running POC system
python jobs/brats_fedavg/job.py --env prod --startup-kit KIT                   # provisioned system
python jobs/brats_fedavg/job.py --export --export-dir workspace/jobs           # native job folder
"""

from fedbrats.tools.job_script import main

if __name__ == "__main__":
    main("brats_fedavg", __doc__)
