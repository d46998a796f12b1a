"""``advisor config``: the NixOS configuration of a layout, generated (pure) and written
(with the keys it needs)."""
