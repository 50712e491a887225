"""Access control: API keys, web sessions, rate limits, and when serving without a key is refused.

Nothing here knows about HTTP; ``viewfinder.api.auth`` enforces it on requests."""
