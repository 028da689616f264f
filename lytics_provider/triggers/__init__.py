"""Triggers of the Lytics provider."""
