"""The browser UI: one page at ``/`` over the library API, served on the API's own origin."""
