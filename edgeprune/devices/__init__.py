"""Devices: where artifacts run. `profile`, `latency --measure` and `compile` see only `Device`."""
