"""Tools around the site runtime: command line, job export, simulator and POC drivers, benchmarks, report."""
