"""Edge mode (``trapflow-edge``, ``trapflow edge``): a Raspberry-Pi-class box beside the camera.

Detector only, one core: every photo on the card is hashed and run through the detectors; the
photos with a box at or above the counting threshold are queued for upload (people first,
then animals and vehicles), the blanks stay on the card, and a manifest of every photo with
its best scores is queued last, so nothing disappears unseen. The queue is a SQLite file on
the box's own disk: uploads survive a lost network, a reboot or a full disk, and resume in
order (docs/edge.md).

This package imports neither Prefect, dbt, DuckDB nor Streamlit (the edge install has only
onnxruntime, numpy, Pillow, opencv-headless, piexif, fsspec, PyYAML and typer):
``tests/flows/edge/test_imports.py`` pins that.
"""
