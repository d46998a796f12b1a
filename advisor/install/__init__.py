"""``advisor disks``, ``plan`` and ``install``: finding a disk, the pure plan of an
install, its checks and confirmation, and the journaled run that can resume."""
