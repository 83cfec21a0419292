"""django-storages' own ``tests/test_s3.py``, run against our storages (issue 10, §4).

The suite comes from the installed django-storages' sdist, fetched from PyPI by
``scripts/fetch_django_storages_tests.py`` before pytest (never by a test). ``suite.py``
prepares a copy whose ``S3Storage`` is ours (the only change: how the storage under test
is built), ``settings.py`` is their settings plus a ``DUAL_STORAGE`` on moto, ``plugin.py``
marks each deliberate difference (``differences.py``) as a strict xfail, and
``tests/test_django_storages_suite.py`` runs it once per storage.
"""
