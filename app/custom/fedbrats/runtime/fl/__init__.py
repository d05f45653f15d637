"""NVIDIA FLARE components: the site executor, FedAvg that scores the final model, the guarded aggregator, the
case-weighted model selection, the cross-site evaluation of live sites, the run state, where a site's data lives."""
