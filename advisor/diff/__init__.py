"""``advisor diff``: what the next boot will erase from the rolled-back datasets.

``zfs diff -H -F <dataset>@blank`` is read as it is written (:mod:`advisor.diff.parse`),
each path is classified, purely, as noise, already persisted, or to be erased with the
``environment.persistence`` entry that would keep it (:mod:`advisor.diff.classify`), and
counted into a bounded tally (:mod:`advisor.diff.tally`); :mod:`advisor.diff.report`
prints it as a table, JSON or a Nix fragment. :mod:`advisor.diff.command` is the edge:
the layout record, the mounts, and the ``zfs diff`` child.
"""
