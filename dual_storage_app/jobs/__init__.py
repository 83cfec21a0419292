"""Long storage jobs on Django's task framework: verify, adopt, retention and usage scans.

A sub-app (label ``dual_storage_jobs``): add ``"dual_storage_app.jobs"`` to
``INSTALLED_APPS`` with a task backend (``TASKS``; ``django_tasks_db`` and, on Django 5.2,
``django_tasks``) to run these jobs in the background. A job is split into batches that
any number of workers take at once; each batch is claimed under a lease, and its result
and its ``done`` status are written together, so a batch whose worker died is run again
and counted once. :mod:`.runner` starts, resumes and describes jobs; the management
command is ``dualstorage_jobs``.

Nothing here is imported by the rest of ``dual_storage_app``, which works without it.
"""
