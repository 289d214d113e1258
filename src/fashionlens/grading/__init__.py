"""Second-hand sorting (issue 4): multi-view items, care labels, grading heads, damage, routes."""
