"""``advisor backup``: back the kept datasets up now, or print the NixOS fragment that
does it on a schedule (sanoid and syncoid). The policy is :mod:`advisor.backups`'s."""
