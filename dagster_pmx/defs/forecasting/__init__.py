"""forecasting domain of the pmx asset graph."""
