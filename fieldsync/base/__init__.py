"""The basics every layer uses: atomic writes, YAML files, hashing, clock, names, geometry, templates, platform."""
