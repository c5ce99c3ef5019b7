"""The simulated inspection camera: the chamber renderer, an MJPEG-over-HTTP device, video files."""
