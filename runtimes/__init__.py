"""What runs on the device (runner.py, backend_*.py, emulation/), shipped as package data
`edgeprune.runtimes` and run as scripts, never imported by edgeprune (edgeprune/locations.py
finds them)."""
