"""Where Pods run: the Runtime protocol and its implementations."""
