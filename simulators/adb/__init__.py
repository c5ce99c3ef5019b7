"""Simulated Android phones that speak the real ADB wire protocol over TCP, and the kiosk's phone ports.

:mod:`simulators.adb.wire` is the packet codec, :mod:`simulators.adb.connection` the phone's side
of a connection, :mod:`simulators.adb.phone` one plugged phone and :mod:`simulators.adb.ports`
the ``phones`` device that plugs and unplugs them.
"""
