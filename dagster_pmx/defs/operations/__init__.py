"""operations domain of the pmx asset graph."""
