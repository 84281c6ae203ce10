"""The data-quality wall: every incoming price row is passed, repaired or quarantined, with a reason.

``wall`` (the driver, :func:`~python_models.data_quality.wall.screen_prices`), ``rules`` (the table
of rules, one function each), ``normalise`` (column mapping and parsing), ``screening`` (a frame's
state on its way through) and ``report`` (the findings that are not rows).
"""
