"""Who executes models: devices, model sources, the micro-batcher and the model pool."""
