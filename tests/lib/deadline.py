"""The per-test deadline shared by tests/integration and tests/crash.

No test may run longer than DEFAULT_DEADLINE_SECONDS unless it says so with
@pytest.mark.deadline(seconds); a hung daemon then fails one test instead of
eating the whole CI budget.  A conftest imports `deadline_fixture` (an
autouse fixture: importing it registers it) and calls `register_marker`
from its pytest_configure.
"""

import signal

import pytest

DEFAULT_DEADLINE_SECONDS = 300


class DeadlineExceeded(Exception):
    pass


def register_marker(config) -> None:
    config.addinivalue_line(
        "markers", "deadline(seconds): fail the test if it runs longer than this")


@pytest.fixture(autouse=True)
def deadline_fixture(request):
    marker = request.node.get_closest_marker("deadline")
    seconds = marker.args[0] if marker else DEFAULT_DEADLINE_SECONDS

    def expired(signum, frame):
        raise DeadlineExceeded(f"test exceeded its deadline of {seconds}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
