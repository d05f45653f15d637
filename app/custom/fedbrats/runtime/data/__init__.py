"""A site's data: datalists, the guards on every case, the MSD layout, MONAI transforms, the compact cache, loaders."""
