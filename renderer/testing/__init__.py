"""Local stand-ins for tests, the demo and the benchmark."""
