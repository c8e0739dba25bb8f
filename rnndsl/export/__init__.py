"""Writing trained networks in formats other programs read (ONNX: ``export.onnx``)."""
