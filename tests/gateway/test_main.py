"""``python -m gateway``'s logging: a request aiohttp's parser refuses is one INFO line, not an
ERROR with a traceback that echoes the sender's bytes (a log flood anyone could cause)."""

from __future__ import annotations

import logging
import sys

import pytest
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from gateway.__main__ import quiet_malformed_requests


def record_of(error: Exception | None) -> logging.LogRecord:
    exc_info = (type(error), error, None) if error else None
    return logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request",
                             None, exc_info)


@pytest.mark.parametrize("error", [BadHttpMessage("Invalid header value char: b'\\x00evil'"),
                                   LineTooLong("x" * 9000, "8190")])
def test_a_refused_request_is_one_info_line_without_its_bytes(error: Exception) -> None:
    record = record_of(error)
    assert quiet_malformed_requests(record) is True
    assert record.levelno == logging.INFO and record.exc_info is None
    assert record.getMessage() == "malformed request refused with 400"


def test_other_errors_keep_their_level_and_traceback() -> None:
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request",
                                   None, sys.exc_info())
    quiet_malformed_requests(record)
    assert record.levelno == logging.ERROR and record.exc_info is not None
