"""The audit: structural what-ifs, reported apart from the uncertainty analysis."""
