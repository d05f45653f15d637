"""Job wiring: a job's definition, the recipe that turns it into a FLARE job, where it runs, its privacy filters."""

import warnings

# FLARE takes --export / --export-dir off every job.py command line and warns each time in case the
# script defines flags of the same names; the product's job scripts define none.
warnings.filterwarnings("ignore", message="NVFlare reserves '--export'", category=UserWarning)
