"""trading domain of the pmx asset graph: the paper broker's ledger."""
