"""Shared test machinery: a real upstream and a real gateway on loopback ports."""
