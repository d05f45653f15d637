"""brats_central: the centralised baseline as a FLARE job, one site (site-All) on the union datalist.

python jobs/brats_central/job.py --data-root /data/brats18 --gpu 0             # simulator
python jobs/brats_central/job.py --env prod --startup-kit KIT                  # provisioned system
python jobs/brats_central/job.py --export --export-dir workspace/jobs          # native job folder
"""

from fedbrats.tools.job_script import main

if __name__ == "__main__":
    main("brats_central", __doc__)
