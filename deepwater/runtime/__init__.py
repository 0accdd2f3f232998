"""The runtime layer: backends by name, devices, building nets, Ray, weight files, ONNX sessions, distance engines."""
