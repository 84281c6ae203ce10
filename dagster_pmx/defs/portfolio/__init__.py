"""portfolio domain of the pmx asset graph."""
