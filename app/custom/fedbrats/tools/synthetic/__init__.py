"""Realistic BraTS-like synthetic cases built on the MNI152 brain template."""
