"""Stacks compose constructs, grant and tag; they hold no resource definitions of their own."""
