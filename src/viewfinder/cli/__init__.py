"""The ``viewfinder`` command line."""
