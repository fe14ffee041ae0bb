"""Settings of tests/replica: the test settings, with the database on a private primary and
its streaming replica (``scripts/replica.sh``, started by ``conftest.py``).

Run apart from the suite, in their own process (scripts/test does)::

    pytest --ds=tests.replica.settings -p no:cacheprovider --no-cov tests/replica

The servers take two free loopback ports, chosen here and passed to the script through the
environment (REPLICA_PRIMARY_PORT, REPLICA_PORT).
"""

import os
import socket


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Always fresh ports: a developer's `make replica` pair (5442, 5443) may be running.
os.environ["REPLICA_PRIMARY_PORT"] = str(_free_port())
os.environ["REPLICA_PORT"] = str(_free_port())
os.environ["REPLICA_DB"] = "inbo_replica_test"
REPLICA_TEST_DB = os.environ["REPLICA_DB"]
_PRIMARY = f"postgres://postgres@127.0.0.1:{os.environ['REPLICA_PRIMARY_PORT']}/{REPLICA_TEST_DB}"
_REPLICA = f"postgres://postgres@127.0.0.1:{os.environ['REPLICA_PORT']}/{REPLICA_TEST_DB}"
os.environ["DATABASE_URL"] = _PRIMARY
os.environ["DATABASE_REPLICA_URLS"] = _REPLICA

from tests.settings import *  # noqa: E402, F403

# The private servers are the tests' own: no test database is created, the tests write
# and commit on the primary and read what streamed to the replica.
for _alias in DATABASES:  # noqa: F405
    DATABASES[_alias]["TEST"] = {"NAME": REPLICA_TEST_DB}  # noqa: F405
