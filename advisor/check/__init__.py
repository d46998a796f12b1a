"""``advisor check``: is the installed system going to boot, and does it still match its
threat model? Pure checks (:mod:`.checks`) over facts a probe gathers (:mod:`.probe`)."""
