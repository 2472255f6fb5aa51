"""Sinks: the kinds of destination a webhook delivers to."""
