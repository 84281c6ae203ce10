"""transform domain of the pmx asset graph."""
