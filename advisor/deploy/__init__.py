"""``advisor export``: the advisor's layout handed to other tools, disko and
nixos-anywhere. The one family that imports two others: ``install`` (the spec, its
checks and the plan's declarations) and ``nixos`` (the configuration), which it composes
for those tools (docs/architecture.md)."""
