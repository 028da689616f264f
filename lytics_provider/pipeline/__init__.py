"""Pipeline of the Lytics provider."""
