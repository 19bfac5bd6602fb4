"""The aiohttp front door: the app, its endpoints and the process that serves it."""
