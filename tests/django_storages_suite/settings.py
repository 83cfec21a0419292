"""django-storages' test settings (their ``tests/settings.py``), plus our app and a
``DUAL_STORAGE`` whose two stores are moto on loopback addresses nothing listens on (so a
request that escapes moto is refused at once, never sent beyond loopback).

The bucket of every kind is their ``AWS_STORAGE_BUCKET_NAME``, so their assertions on the
bucket hold for whichever of our storages is under test.
"""

MEDIA_URL = "/media/"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
SECRET_KEY = "hailthesunshine"
USE_TZ = True
AWS_STORAGE_BUCKET_NAME = "test-bucket"

INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "dual_storage_app"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# moto answers these endpoints (MOTO_S3_CUSTOM_ENDPOINTS, set by the runner).
INTERNAL_ENDPOINT = "http://127.0.0.1:1"
EXTERNAL_ENDPOINT = "http://127.0.0.1:2"
DUAL_STORAGE = {
    "INTERNAL_STORAGE_ENDPOINT": INTERNAL_ENDPOINT,
    "INTERNAL_STORAGE_ACCESS_KEY": "suite-internal-access",
    "INTERNAL_STORAGE_SECRET_KEY": "suite-internal-secret",
    "INTERNAL_STORAGE_REGION": "us-east-1",
    "EXTERNAL_STORAGE_ENDPOINT": EXTERNAL_ENDPOINT,
    "EXTERNAL_STORAGE_ACCESS_KEY": "suite-external-access",
    "EXTERNAL_STORAGE_SECRET_KEY": "suite-external-secret",
    "EXTERNAL_STORAGE_REGION": "us-east-1",
    "INTERNAL_BUCKET_WEIGHTS": AWS_STORAGE_BUCKET_NAME,
    "EXTERNAL_BUCKET_DATASETS": AWS_STORAGE_BUCKET_NAME,
}
