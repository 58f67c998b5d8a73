"""The Shapes world: the built-in demo model's procedural domain (numpy only)."""
