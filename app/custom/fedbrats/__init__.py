"""Federated BraTS segmentation with SegResNetVAE on NVIDIA FLARE and MONAI."""

__version__ = "0.1.0"
