"""Fixtures for the scale-out proof: one deployment (Redis + PostgreSQL + keys) per run.

The deployment (private AOF Redis, fresh PostgreSQL database, initialised data dir with users
and the audience) is shared by every test here; each test gets its own running instances, and
whatever a test does to Redis (stop, restart) it undoes before the next one starts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.scaleout.harness import Deployment, Instance, fresh_database, persistent_redis

USERS = ("alice", "bob", "carol")


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Redis (AOF) + a fresh PostgreSQL database + one data dir, initialised once."""
    tmp = tmp_path_factory.mktemp("scaleout")
    with persistent_redis(tmp / "redis") as redis, fresh_database() as database_url:
        dep = Deployment(tmp, redis, database_url)
        dep.setup(*USERS)
        try:
            yield dep
        finally:
            dep.stop()


@pytest.fixture
def pair(deployment: Deployment) -> Iterator[tuple[Instance, Instance]]:
    """Two running instances, A and B, on different ports; stopped after the test."""
    if not deployment.redis.running:
        deployment.redis.start()
    a = deployment.instance("a")
    b = deployment.instance("b")
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()
        deployment.instances.clear()
        if not deployment.redis.running:
            deployment.redis.start()


@pytest.fixture
def one(deployment: Deployment) -> Iterator[Instance]:
    """One running instance; stopped after the test."""
    inst = deployment.instance("solo")
    try:
        yield inst.start()
    finally:
        inst.stop()
        deployment.instances.clear()
