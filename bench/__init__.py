"""Benchmarks of hwd against a real daemon process (``make bench`` or ``python -m bench``).

Each benchmark starts ``hwd serve`` as a subprocess on sockets and a journal in a temporary
directory, measures it from the outside, as a client would, and reports figures against goals.
See docs/performance.md.
"""
