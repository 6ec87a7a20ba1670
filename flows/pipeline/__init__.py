"""The ingest pipeline: list a source, read and hash each file, decode, detect, classify, load.

Plain functions, no Prefect: ``flows.tasks`` wraps them in thin tasks.
"""
