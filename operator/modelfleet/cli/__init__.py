"""Command-line entry points of modelfleet."""
