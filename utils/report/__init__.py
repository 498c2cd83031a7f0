"""Figures, the generated README sections and the headless notebook runner (the top layer)."""
