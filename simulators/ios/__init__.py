"""Simulated iPhones: a usbmuxd speaking its plist protocol over TCP, in front of one lockdownd per phone."""
