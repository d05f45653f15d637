"""Data preparation on a user's or a site's machine: synthetic sites, reference and partition datalists, data checks."""
