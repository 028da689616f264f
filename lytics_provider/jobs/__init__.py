"""Jobs of the Lytics provider."""
