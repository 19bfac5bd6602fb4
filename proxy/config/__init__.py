"""Configuration: the environment (Settings), the provider catalog, the state home and the
profiles (ports, pid files).
"""
