"""Figures (matplotlib, headless) and HTML reports built from run records."""
