"""Entry point of ``python -m simulators``; see :mod:`simulators.process`."""

from simulators.process import main

if __name__ == "__main__":
    raise SystemExit(main())
