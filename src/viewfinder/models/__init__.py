"""What each model does: preprocess (CPU, per item), forward (device, per batch), postprocess."""
