"""Thin Qt views of the studio's models."""
