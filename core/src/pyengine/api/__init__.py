"""The Docker Engine API over aiohttp: routes translate HTTP to core calls and back, nothing more."""
