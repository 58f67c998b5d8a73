"""STARFlow Studio engine: the Qt-free PyTorch core (models, samplers, sessions, training)."""
