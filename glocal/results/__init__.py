"""Results: statistics, plots and tables."""
