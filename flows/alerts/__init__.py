"""Alerts: rules evaluated on what dbt marks as counted, an outbox, delivery through Apprise."""
