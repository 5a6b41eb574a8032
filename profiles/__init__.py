"""Device profiles (*.toml) and measured LUTs (luts/*.json), shipped as package data
`edgeprune.profiles` (read through edgeprune/locations.py). No code lives here."""
