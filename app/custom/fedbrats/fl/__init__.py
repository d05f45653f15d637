"""NVIDIA FLARE adapters: site executor, FedAvg with final-model scoring, case-weighted model selection."""
