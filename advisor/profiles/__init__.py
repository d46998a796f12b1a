"""Built-in example profiles (TOML files), read by :mod:`advisor.answers`."""
