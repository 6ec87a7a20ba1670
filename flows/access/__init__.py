"""Who may see what: dashboard sign-in and roles, location privacy and people blurring.

Prefect-free: the dashboard imports these modules.
"""
