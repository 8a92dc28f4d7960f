"""The ConvViz TensorBoard dashboard plugin (loads without TensorFlow)."""
