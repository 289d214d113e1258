"""One router per capability: tag, grade, search, trends, health, metrics."""
