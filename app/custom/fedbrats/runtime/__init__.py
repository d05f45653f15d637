"""What every job ships (a real copy in its ``custom/`` folder) and the FLARE server and sites run: nothing here
imports from the other stages of the package."""
