"""One construct per capability; keyword-only properties; resources exposed as attributes."""
