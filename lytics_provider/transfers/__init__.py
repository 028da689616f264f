"""Transfers of the Lytics provider."""
