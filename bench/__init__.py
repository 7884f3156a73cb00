"""Load benchmarks: the gateway against nginx on loopback, run with ``bench/run`` (``python -m bench``)."""
