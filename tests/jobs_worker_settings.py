"""Settings for worker processes sharing a storage job (``tests/real/test_jobs_workers.py``).

The suite's settings on a database that several processes reach, named by the environment
variable ``DUAL_STORAGE_JOBS_TEST_DB``: a ``postgres://`` URL, or the path of a SQLite file
(write-ahead log, so readers never wait; writers wait up to 30 s for each other). The
stores come from the environment (``INTERNAL_STORAGE_ENDPOINT``...), as in a deployment.
"""

import os

from tests.database import POSTGRES_SCHEMES, database_from_url
from tests.settings import *  # noqa: F403

_TARGET = os.environ["DUAL_STORAGE_JOBS_TEST_DB"]

if _TARGET.split("://", 1)[0] in POSTGRES_SCHEMES:
    DATABASES = {"default": database_from_url(_TARGET)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _TARGET,
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
            },
        }
    }

DEBUG = False
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"dual_storage_app.jobs": {"handlers": ["stderr"], "level": "INFO"}},
}
