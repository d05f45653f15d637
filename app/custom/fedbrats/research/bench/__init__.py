"""``fedbrats bench``: FLARE's overhead, training steps, a site's cache and loader, scaling, long runs."""
