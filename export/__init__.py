"""modmt.export: merge a direction's two adapters into static deltas, fold them into the base, export to ONNX."""
