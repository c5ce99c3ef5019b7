"""The technician and simulator command line, `hwd`: a gRPC client of the daemon's tech.sock.

Entry point: :func:`hwd.cli.main.run`. Exit codes are listed in :mod:`hwd.cli.exitcodes` and
docs/cli.md.
"""
