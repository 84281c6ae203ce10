"""The data-quality wall: every incoming price row is passed, repaired or quarantined, with a reason."""
