"""Sensors of the Lytics provider."""
