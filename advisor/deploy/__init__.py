"""``advisor export`` and ``advisor fleet``: the advisor's layout handed to other tools,
disko and nixos-anywhere. The one family that imports others: ``install`` (the spec,
its checks and the plan's declarations) and ``nixos`` (the configuration), which it
composes for those tools, and ``assess`` (a fleet's profiles scored to a backend)
(docs/architecture.md)."""
