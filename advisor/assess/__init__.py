"""``advisor assess``, ``questions`` and ``profiles``: the threat-model questionnaire, its
answers, the scoring of backends and the report of the recommendation."""
