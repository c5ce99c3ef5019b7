"""iPhones over usbmuxd and lockdownd: the connection code (the only code that imports
pymobiledevice3), the pure builder of a report from what lockdownd answers, and the table of
marketing names."""
