"""One module per compatibility surface."""
