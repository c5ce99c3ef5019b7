"""Simulated Android phones: profiles that follow what real phones print, and the shell that answers from them.

:func:`simulators.android.profiles.load_profiles` gives every profile by name; a profile's
:meth:`~simulators.android.profiles.AndroidProfile.run` answers one ``adb shell`` command line.
"""
