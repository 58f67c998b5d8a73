"""Thin Qt views: each takes the models it shows (app.state) and emits what the user asks for."""
