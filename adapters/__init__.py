"""Adapters: engines and services behind core's ports."""
