"""Where our storages deliberately differ from ``S3Storage``, as django-storages' own
tests show it: each test that fails for a reason written here is a strict xfail (it must
keep failing; one that starts to pass fails the run until it leaves this table).

The README's "Deliberate differences from S3Storage" lists the same reasons; a test
checks that each of :data:`REASONS` is there.
"""

from __future__ import annotations

from typing import NamedTuple


class Difference(NamedTuple):
    """One deliberate difference: a short title (as the README's list names it) and why."""

    title: str
    reason: str

    def __str__(self) -> str:
        return f"{self.title}: {self.reason}"


CONNECTION = Difference(
    "Connection settings come from DUAL_STORAGE",
    "endpoints, credentials and buckets come from DUAL_STORAGE or the environment, and the "
    "boto3 client's settings from the provider profile (checksums when_required, the "
    "classic transfer client); access_key/secret_key/session_profile options are refused, "
    "AWS_S3_SESSION_PROFILE and AWS_S3_CLIENT_CONFIG are not read",
)
UNSIGNED = Difference(
    "No unsigned URLs",
    "the buckets are private: unsigned_connection raises NoPublicURL and url() always "
    "presigns, whatever querystring_auth says",
)
INTERNAL_URL = Difference(
    "No URL for internal files",
    "InternalStorage.url() raises NoPublicURL: no browser may reach the private store; "
    "stream the file through the backend",
)
CUSTOM_DOMAIN = Difference(
    "No custom domain",
    "links are presigned against EXTERNAL_STORAGE_PUBLIC_ENDPOINT; custom_domain (and "
    "CloudFront signing) is refused unless None, and a URL needs a valid key",
)
NO_OVERWRITE = Difference(
    "Saves never replace an object by default",
    "file_overwrite defaults to False: a save asks for a free name (HEAD) and writes "
    "conditionally (If-None-Match: *), so a mock that answers every HEAD ends in "
    "ObjectExists (NoFreeName), and a second save of one name gets another name",
)
CLIENT_API = Difference(
    "Requests use the client API",
    "the storage's requests go through connection.meta.client (the verified engine: "
    "put_object or multipart with the SHA-256 recorded, head_object, delete_object, ranged "
    "get_object), not the resource's Object.upload_fileobj/load/delete/download_fileobj "
    "that these mocks answer",
)
ERRORS = Difference(
    "The app's exceptions",
    "S3 errors are the app's exception types (AccessDenied, ObjectNotFound, "
    "StorageUnavailable... carrying code and status), not botocore's ClientError",
)
READ_ONLY = Difference(
    "open() is read-only",
    "S3File's writer completes a multipart upload even after an exception, publishing a "
    "partial object; open() downloads (verified) to a temporary file and refuses 'w'/'a'/"
    "'+' modes: write with save()",
)
LOCATION = Difference(
    "No location prefix",
    "location must be '' (option, class attribute or AWS_LOCATION): keys are the "
    "bucket's keys, as the client and the artifact rows record them",
)
NO_ACL = Difference(
    "No ACLs",
    "objects are never given ACLs (default_acl, AWS_DEFAULT_ACL or ACL in "
    "object_parameters is refused): the buckets are private",
)
CONTENT_TYPE = Difference(
    "The type comes from the name",
    "the content type is guessed from the name, never taken from the uploaded file's "
    "content_type (a browser's claim); an explicit ContentType object parameter still wins",
)
SAFE_LINKS = Difference(
    "Links are attachments",
    "every link asks for Content-Disposition: attachment with the file name (types a "
    "browser would run are never inline), on the kind's bucket",
)
LOCAL_FILE = Difference(
    "Opened files are local files",
    "open() returns a Django File over a local temporary file, as FileSystemStorage does: "
    "readlines() in 'rb' splits at b'\\n' only (S3File also splits at b'\\r')",
)

REASONS = (
    CONNECTION,
    UNSIGNED,
    INTERNAL_URL,
    CUSTOM_DOMAIN,
    NO_OVERWRITE,
    CLIENT_API,
    ERRORS,
    READ_ONLY,
    LOCATION,
    NO_ACL,
    CONTENT_TYPE,
    SAFE_LINKS,
    LOCAL_FILE,
)


def _join(*differences: Difference) -> Difference:
    """A test that meets several differences, in the order it meets them."""
    return Difference(
        "; ".join(d.title for d in differences), "; ".join(d.reason for d in differences)
    )


# Classes of their suite that never build ``s3.S3Storage`` (django-storages' static
# storages and its old module names): they test django-storages, not us.
NOT_ABOUT_THE_STORAGE = frozenset(
    {"S3StaticStorageTests", "S3ManifestStaticStorageTests", "TestBackwardsNames"}
)

_SAVE = _join(NO_OVERWRITE, CLIENT_API)
BOTH: dict[str, Difference] = {
    "S3StorageTests.test_auth_config": CONNECTION,
    "S3StorageTests.test_client_config": CONNECTION,
    "S3StorageTests.test_s3_session": CONNECTION,
    "S3StorageTests.test_connection_unsiged": UNSIGNED,
    "S3StorageTests.test_content_type": _SAVE,
    "S3StorageTests.test_content_type_set_explicitly": _SAVE,
    "S3StorageTests.test_storage_save": _SAVE,
    "S3StorageTests.test_storage_save_gzip": _SAVE,
    "S3StorageTests.test_storage_save_gzip_twice": _SAVE,
    "S3StorageTests.test_storage_save_gzipped": _SAVE,
    "S3StorageTests.test_storage_save_gzipped_non_seekable": _SAVE,
    "S3StorageTests.test_storage_save_non_seekable": _SAVE,
    "S3StorageTests.test_storage_save_with_default_acl": _join(NO_OVERWRITE, NO_ACL),
    "S3StorageTests.test_storage_object_parameters_not_overwritten_by_default": _join(
        NO_OVERWRITE, NO_ACL
    ),
    "S3StorageTests.test_special_characters": _join(NO_OVERWRITE, CLIENT_API, CUSTOM_DOMAIN),
    "S3StorageTests.test_override_class_variable": LOCATION,
    "S3StorageTests.test_override_init_argument": LOCATION,
    "S3StorageTests.test_override_settings": LOCATION,
    "S3StorageTests.test_storage_delete": CLIENT_API,
    "S3StorageTests.test_storage_delete_other_error_reraise": CLIENT_API,
    "S3StorageTests.test_storage_size": CLIENT_API,
    "S3StorageTests.test_storage_size_not_exists": CLIENT_API,
    "S3StorageTests.test_storage_mtime": CLIENT_API,
    "S3StorageTests.test_storage_open_read_string": CLIENT_API,
    "S3StorageTests.test_storage_exists_other_error_reraise": ERRORS,
    "S3StorageTests.test_storage_open_no_overwrite_existing": READ_ONLY,
    "S3StorageTests.test_storage_open_no_write": READ_ONLY,
    "S3StorageTests.test_storage_open_write": READ_ONLY,
    "S3StorageTests.test_storage_write_beyond_buffer_size": READ_ONLY,
    "S3StorageTests.test_write_bytearray": READ_ONLY,
    "S3StorageTestsWithMoto.test_content_type_attribute": CONTENT_TYPE,
    "S3StorageTestsWithMoto.test_storage_open_reading_with_newlines": _join(
        NO_OVERWRITE, LOCAL_FILE
    ),
}
INTERNAL_ONLY: dict[str, Difference] = {
    "S3StorageTests.test_custom_domain_parameters": INTERNAL_URL,
    "S3StorageTests.test_generated_url_is_encoded": INTERNAL_URL,
    "S3StorageTests.test_storage_url": INTERNAL_URL,
    "S3StorageTests.test_storage_url_custom_domain_signed_urls": INTERNAL_URL,
    "S3StorageTests.test_storage_url_slashes": INTERNAL_URL,
    "S3StorageTests.test_url_unsigned": INTERNAL_URL,
}
EXTERNAL_ONLY: dict[str, Difference] = {
    "S3StorageTests.test_custom_domain_parameters": CUSTOM_DOMAIN,
    "S3StorageTests.test_generated_url_is_encoded": CUSTOM_DOMAIN,
    "S3StorageTests.test_storage_url": SAFE_LINKS,
    "S3StorageTests.test_storage_url_custom_domain_signed_urls": CUSTOM_DOMAIN,
    "S3StorageTests.test_storage_url_slashes": CUSTOM_DOMAIN,
    "S3StorageTests.test_url_unsigned": UNSIGNED,
}


def differences_for(storage: str) -> dict[str, Difference]:
    """The deliberate differences of ``storage`` (``internal`` or ``external``)."""
    return {**BOTH, **(INTERNAL_ONLY if storage == "internal" else EXTERNAL_ONLY)}
