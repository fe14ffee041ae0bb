"""Benchmarks run under pytest (``bench/hung_redis.py``) use the test suite's fixtures: its
database, its Redis guards and private redis-server, its users and clients."""

from tests import conftest as _suite

globals().update({name: value for name, value in vars(_suite).items() if not name.startswith("__")})
