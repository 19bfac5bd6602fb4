"""`ccp mitm`: mitmproxy (HTTPS_PROXY mode) in front of the same pipeline."""
