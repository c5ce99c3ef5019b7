"""The gRPC edge: servers, servicers, converters, the error table and per-socket allow-lists."""
