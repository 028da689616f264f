"""Hooks of the Lytics provider."""
