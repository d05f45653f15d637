"""Running on this machine: FLARE's simulator, a POC system, the quickstart, training without FLARE."""
