"""Thin Prefect tasks: each one delegates to a plain function in ``flows._*`` or ``models_ml``."""
