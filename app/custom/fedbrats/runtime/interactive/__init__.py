"""The Deepgrow-style interactive model (Sakinis et al. 2019, MONAI's ``monai.apps.deepgrow``) for the three nested
tumour regions: clicks, click maps, click consistency, training and validation with simulated clicks."""
