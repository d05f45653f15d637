"""Tools around the site runtime: command line, job export, simulator and POC drivers, benchmarks, report."""

import warnings

# FLARE takes --export / --export-dir off every job.py command line and warns each time in case the
# script defines flags of the same names; the product's job scripts define none.
warnings.filterwarnings("ignore", message="NVFlare reserves '--export'", category=UserWarning)
