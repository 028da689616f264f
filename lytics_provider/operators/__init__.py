"""Operators of the Lytics provider."""
