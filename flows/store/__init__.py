"""Storage: the DuckDB warehouse (or the scale-out lake), its schema, and the dbt runner."""
