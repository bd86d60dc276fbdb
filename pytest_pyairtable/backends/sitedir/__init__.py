"""A directory put first on a host-run service's PYTHONPATH when the run measures
coverage: it holds only ``sitecustomize.py`` (see backends/measure.py)."""
