"""The only code that touches hardware libraries and external processes."""
