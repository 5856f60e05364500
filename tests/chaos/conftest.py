"""The chaos test reuses the scheduling suite's writer (`db`: services with no scheduler)."""

from tests.scheduling.conftest import db

__all__ = ["db"]
