"""Plain-Python operations shared by views and jobs; they know nothing of requests or RQ."""
