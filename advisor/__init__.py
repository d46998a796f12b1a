"""advisor: choose and install an encrypted ZFS layout for NixOS with an ephemeral root.

Plugin authors import from :mod:`advisor.plugin`; this module stays import-light so that
``advisor --help`` starts fast.
"""

__version__ = "0.1.0"
