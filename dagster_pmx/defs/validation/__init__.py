"""validation domain of the pmx asset graph: pairwise model tests and the leaderboard."""
