"""Thin Prefect tasks: each delegates in a few lines to a plain function of a flows sub-package."""
