"""pytest fixtures for the fake TikTok's own tests; reusable by other suites (import fakectl).

`fake` is a fresh in-process fake per test (starts in milliseconds), so tests never share state.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fakectl  # noqa: E402


@pytest.fixture
def fake_factory():
    """make(config=None, **kwargs) -> a started InProcessFake; all are stopped after the test."""
    started = []

    def make(config=None, **kwargs):
        fake = fakectl.InProcessFake(config, **kwargs)
        fake.start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


@pytest.fixture
def fake(fake_factory):
    return fake_factory()


@pytest.fixture
def token(fake):
    """An access token of the default creator with every scope."""
    return fake.ctl.grant()["access_token"]


@pytest.fixture
def api(fake, token):
    client = fake.api(token)
    yield client
    client.close()


@pytest.fixture
def sink_factory():
    """make(statuses=None, gate=None) -> a started fakectl.WebhookSink, stopped after the test."""
    sinks = []

    def make(statuses=None, gate=None):
        sink = fakectl.WebhookSink(statuses, gate)
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.stop()


@pytest.fixture
def webhook_sink(sink_factory):
    return sink_factory()
