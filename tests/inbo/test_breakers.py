"""Circuit breakers: a hung Redis costs a few socket timeouts, then nothing until a trial.

The Redis tests hang a private redis-server with SIGSTOP (``redis_state_server.pause()``): it
still accepts connections and takes what is sent, and answers nothing. What they count is
how many commands the application sent down a socket (each one, to a hung server, is a wait
of ``REDIS_SOCKET_TIMEOUT``), never how long anything took.
"""

from __future__ import annotations

import threading

import pytest
import redis
from prometheus_client import REGISTRY

from inbo import breakers
from inbo import redis as inbo_redis
from monitoring import checks
from tests.redis_server import SocketSends

pytestmark = pytest.mark.django_db


@pytest.fixture
def hung_state(redis_state_server, settings, monkeypatch):
    """The state client on a private server with a short timeout and a breaker that opens
    after 2 failures and stays open (60 s) unless a test lets the trial through."""
    settings.REDIS_SOCKET_TIMEOUT = 0.2
    settings.REDIS_BREAKER_FAILURES = 2
    settings.REDIS_BREAKER_RESET_SECONDS = 60.0
    inbo_redis.reset_clients()
    inbo_redis.state().set("kept", "1")  # connected and answering before the hang
    yield redis_state_server
    redis_state_server.resume()


def _state_value(name: str) -> float | None:
    return REGISTRY.get_sample_value("inbo_circuit_state", {"dependency": name})


def _opens(name: str) -> float:
    return REGISTRY.get_sample_value("inbo_circuit_opens_total", {"dependency": name}) or 0.0


def test_hung_redis_opens_the_breaker_and_no_later_call_waits_on_the_socket(
    hung_state, monkeypatch
):
    client = inbo_redis.state()
    opens_before = _opens("redis_state")
    sends = SocketSends(monkeypatch, hung_state.port)
    hung_state.pause()

    for _ in range(2):
        with pytest.raises(redis.TimeoutError):
            client.get("kept")
    assert sends.count == 2
    assert inbo_redis.state_breaker().current_state == breakers.OPEN
    assert _state_value("redis_state") == 1.0
    assert _opens("redis_state") == opens_before + 1

    # Commands, pipelines, locks and scripts: all refused at once, all RedisErrors.
    calls = [
        lambda: client.get("kept"),
        lambda: client.hincrby("h", "f", 1),
        lambda: client.pipeline().incr("n").expire("n", 10).execute(),
        lambda: client.lock("some-lock", timeout=5, blocking=False).acquire(),
        lambda: client.register_script("return 1")(),
    ]
    for call in calls * 4:
        with pytest.raises(redis.ConnectionError) as refused:
            call()
        assert isinstance(refused.value, inbo_redis.RedisCircuitOpen)
    assert sends.count == 2

    # Redis is back, but the breaker waits for its reset time before trying again.
    hung_state.resume()
    with pytest.raises(breakers.CircuitOpen):
        client.get("kept")
    assert sends.count == 2

    inbo_redis.state_breaker().allow_trial()  # the reset time is up
    assert client.get("kept") == "1"
    assert inbo_redis.state_breaker().current_state == breakers.CLOSED
    assert _state_value("redis_state") == 0.0
    assert client.incr("n") == 1


def test_a_failed_trial_opens_the_breaker_again_after_one_wait(hung_state, monkeypatch):
    client = inbo_redis.state()
    opens_before = _opens("redis_state")
    hung_state.pause()
    for _ in range(2):
        with pytest.raises(redis.TimeoutError):
            client.get("kept")
    sends = SocketSends(monkeypatch, hung_state.port)

    inbo_redis.state_breaker().allow_trial()
    with pytest.raises(redis.TimeoutError):
        client.get("kept")  # the trial: one wait
    with pytest.raises(breakers.CircuitOpen):
        client.get("kept")

    assert sends.count == 1
    assert inbo_redis.state_breaker().current_state == breakers.OPEN
    assert _opens("redis_state") == opens_before + 2


def test_errors_redis_answered_with_do_not_open_the_breaker(hung_state):
    client = inbo_redis.state()
    client.set("text", "not a hash")
    for _ in range(5):
        with pytest.raises(redis.ResponseError):
            client.hincrby("text", "field", 1)
    assert inbo_redis.state_breaker().current_state == breakers.CLOSED
    assert inbo_redis.state_breaker().fail_counter == 0


def test_readiness_shows_an_open_breaker_without_failing_readiness(client, hung_state):
    hung_state.pause()
    for _ in range(2):
        with pytest.raises(redis.TimeoutError):
            inbo_redis.state().get("kept")
    hung_state.resume()  # the probes use their own clients: readiness itself is fine again

    response = client.get("/health/ready/")

    assert response.status_code == 200, response.json()
    check = response.json()["checks"]["circuit_breakers"]
    assert check["status"] == checks.FAIL
    assert check["critical"] is False
    assert "redis_state open" in check["detail"]


def _breaker(**kwargs) -> breakers.Breaker:
    return breakers.Breaker(
        "test_dependency",
        fail_max=kwargs.get("fail_max", 1),
        reset_timeout=60.0,
        failures=(OSError,),
        open_error=lambda message: ConnectionRefusedError(message),
    )


def _fail() -> None:
    raise OSError("down")


def test_half_open_lets_exactly_one_trial_through_while_others_fall_back():
    breaker = _breaker()
    with pytest.raises(OSError):
        breaker.call(_fail)
    breaker.allow_trial()
    entered, release = threading.Event(), threading.Event()
    outcome: list[str] = []

    def trial() -> str:
        entered.set()
        release.wait()
        return "answered"

    worker = threading.Thread(target=lambda: outcome.append(breaker.call(trial)))
    worker.start()
    entered.wait()
    try:
        assert breaker.current_state == breakers.HALF_OPEN
        with pytest.raises(ConnectionRefusedError, match="trial call in flight"):
            breaker.call(lambda: "second")
    finally:
        release.set()
        worker.join()

    assert outcome == ["answered"]
    assert breaker.current_state == breakers.CLOSED
    assert breaker.call(lambda: "again") == "again"


def test_calls_through_a_closed_breaker_run_concurrently():
    """pybreaker's own call() holds a lock for the whole call; ours must not (a threaded web
    worker would queue every Redis command behind the slowest one)."""
    breaker = _breaker(fail_max=5)
    inside = threading.Barrier(2, timeout=10)

    def meet() -> str:
        inside.wait()  # both calls must be inside at once, or this times out
        return "met"

    results: list[str] = []
    workers = [
        threading.Thread(target=lambda: results.append(breaker.call(meet))) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert results == ["met", "met"]


def test_nested_guards_count_one_operation_once():
    breaker = _breaker(fail_max=2)
    with pytest.raises(OSError), breaker.guard(), breaker.guard():
        _fail()
    assert breaker.current_state == breakers.CLOSED
    assert breaker.fail_counter == 1
