"""Measurements that write their results into ``docs/``: the accuracy study, the privacy cost, the benchmarks."""
