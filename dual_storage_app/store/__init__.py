"""The storage engine: the only code in the package that talks to S3.

:class:`Store` is the facade; the modules beside it each hold one part of the work
(``upload``, ``download``, ``ranged_download``, ``hashing``, ``integrity``, ``streaming``,
``presign``, ``schema_cache``, ``etags``, ``clients``, ``errors``, ``transfer``) and take
a boto3 client and a :class:`~dual_storage_app.config.stores.StoreConfig`, never a
``Store``. The engine reads no Django settings and imports nothing from Django but
``sensitive_variables`` (:mod:`.redaction`), so it works in a process without Django
configured (a training worker).
"""

from .facade import Store
from .objects import MultipartUpload, ObjectInfo, TransferResult

__all__ = ["MultipartUpload", "ObjectInfo", "Store", "TransferResult"]
