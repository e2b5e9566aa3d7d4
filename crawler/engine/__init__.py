"""I/O stages: politeness, fetching (the only aiohttp code), the run's pipeline."""
