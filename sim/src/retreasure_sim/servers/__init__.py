"""Fake marketplace servers: real HTTP on loopback, speaking each marketplace's documented wire format."""
