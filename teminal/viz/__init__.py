"""Figures, widgets and the views they read (SPEC §5): plots, notebook widgets, pair views."""
