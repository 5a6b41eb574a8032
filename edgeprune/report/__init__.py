"""What a compile leaves for people and machines: manifest.json (schema-checked), report.md
and plots/*.png."""
