"""Why the simulated kiosk refuses to start or a device operation fails."""


class StartupRefused(Exception):
    """The simulator must not start; the message says why, for a human."""


class SimDeviceError(Exception):
    """One or more devices failed to start or reset; the message names them."""
