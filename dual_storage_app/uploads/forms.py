"""Form support for browser uploads: a widget and fields that take either a finished
direct upload (the file went from the browser to the external store, see
``static/dual_storage_app/direct_upload.js``) or an ordinary uploaded file (JavaScript
off: the file comes through the form as usual).

- :class:`DirectUploadWidget` renders the ordinary ``<input type="file" name="NAME">`` in
  a ``<div data-dual-upload>`` with a hidden ``NAME__upload`` input, the "Choose a
  folder…" control, the progress bar and the Pause / Resume / Cancel buttons. Its value
  is the upload session's id when ``NAME__upload`` is filled in, else the uploaded file.
- :class:`DatasetUploadField` (any form) cleans that value to a :class:`~..models.Dataset`:
  the finished upload's row (a file or a folder), or an unsaved row holding the uploaded
  file, so ``dataset = form.cleaned_data["dataset"]; dataset.save()`` works for all.
- :class:`DatasetAdminForm` (the admin's add page) records a finished upload by
  switching ``form.instance`` to the upload's row, and an uploaded file as any model
  form would.

A session is looked up only when it is used, from :mod:`.session` (imported lazily, so
importing this module touches no model of the uploads).
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.urls import NoReverseMatch, reverse

from ..models import Dataset

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser
    from django.utils.datastructures import MultiValueDict

    from .session import UploadSession

SESSION_SUFFIX = "__upload"
"""The hidden input ``<name>__upload`` holds the id of a finished direct upload."""

_NAME_LENGTH = Dataset._meta.get_field("name").max_length or 255

SERVER_FIELDS = ("bucket", "size", "sha256", "content_type", "etag", "status", "file_count")
"""The columns of a direct upload's row that only the server writes (completing it, then
reading it back): :class:`DatasetUploadField` leaves them unloaded, so ``dataset.save()``
never writes them back over the read-back's result."""

UNKNOWN_UPLOAD = "Unknown upload."
UNFINISHED_UPLOAD = "This upload is not finished."
CORRUPT_UPLOAD = "This upload is corrupt: the stored bytes are not the file's. Upload it again."
FOLDER_UPLOAD = "Choose a file, not a folder."


def session_field_name(name: str) -> str:
    """The name of the hidden input that carries a finished upload's id."""
    return f"{name}{SESSION_SUFFIX}"


class DirectUploadWidget(forms.ClearableFileInput):
    """A file input that ``direct_upload.js`` turns into a direct, resumable upload to
    the external store, of a file or (a second control, or a drop) of a folder; without
    JavaScript it is the ordinary file input.

    ``direct=False`` renders it without the start URL: the script leaves it alone (the
    admin's change page, where a new file replaces the row's object through Django).
    ``folders=False`` renders it without the folder control (single files only).
    """

    template_name = "dual_storage_app/widgets/direct_upload.html"

    class Media:
        js = ("dual_storage_app/direct_upload.js",)
        css: ClassVar[dict[str, tuple[str, ...]]] = {"all": ("dual_storage_app/direct_upload.css",)}

    def __init__(
        self, attrs: dict[str, Any] | None = None, *, direct: bool = True, folders: bool = True
    ) -> None:
        super().__init__(attrs)
        self.direct = direct
        self.folders = folders

    def start_url(self) -> str:
        """Where the script starts a session; empty when the project did not include
        ``dual_storage_app.urls`` (then only the ordinary upload works)."""
        if not self.direct:
            return ""
        try:
            return reverse("dual_storage_app:upload-start")
        except NoReverseMatch:
            return ""

    def start_folder_url(self) -> str:
        """Where the script starts a folder upload; empty without folders (or URLs)."""
        if not (self.direct and self.folders):
            return ""
        try:
            return reverse("dual_storage_app:upload-start-folder")
        except NoReverseMatch:
            return ""

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        session_id = value if isinstance(value, str) else ""
        context = super().get_context(name, None if session_id else value, attrs)
        if session_id:  # the file is in the store: the empty file input is fine
            context["widget"]["attrs"].pop("required", None)
        context["widget"].update(
            {
                "session_name": session_field_name(name),
                "session_id": session_id,
                "start_url": self.start_url(),
                "start_folder_url": self.start_folder_url() if self.start_url() else "",
            }
        )
        return context

    def value_from_datadict(
        self, data: Mapping[str, Any], files: MultiValueDict[str, UploadedFile[Any]], name: str
    ) -> Any:
        """The finished upload's id (a string) when ``<name>__upload`` holds one, else
        what the ordinary file input sent (a file, ``None``, or ``False`` for "clear")."""
        session_id = str(data.get(session_field_name(name)) or "").strip()
        if session_id:
            return session_id
        return super().value_from_datadict(data, files, name)

    def value_omitted_from_data(
        self, data: Mapping[str, Any], files: MultiValueDict[str, UploadedFile[Any]], name: str
    ) -> bool:
        return not data.get(session_field_name(name)) and super().value_omitted_from_data(
            data, files, name
        )


def finished_session(
    value: str, *, user: AbstractBaseUser | AnonymousUser | None = None
) -> UploadSession:
    """The completed upload session ``value`` names, with its dataset, or a
    ``ValidationError``. With ``user``, another user's session is as unknown as a forged
    id; a dataset whose check found other bytes than were sent is refused."""
    from .session import UploadSession

    try:
        session_id = uuid.UUID(value)
    except ValueError:
        raise ValidationError(UNKNOWN_UPLOAD, code="unknown_upload") from None
    session = UploadSession.objects.select_related("dataset").filter(pk=session_id).first()
    if session is None or (user is not None and session.user_id != user.pk):
        raise ValidationError(UNKNOWN_UPLOAD, code="unknown_upload")
    if session.state != UploadSession.State.COMPLETED or session.dataset is None:
        raise ValidationError(UNFINISHED_UPLOAD, code="unfinished_upload")
    if session.dataset.status == Dataset.Status.CORRUPT:
        raise ValidationError(CORRUPT_UPLOAD, code="corrupt_upload")
    return session


class DirectUploadFileField(forms.FileField):
    """A ``FileField`` whose widget may also send a finished upload's id: it cleans to
    the :class:`~.session.UploadSession` (checked by :func:`finished_session`), or to
    whatever Django's ``FileField`` gives (a file, the initial file, ``False``, ``None``).

    ``user`` (set it per request with :func:`limit_uploads_to`) limits the sessions to
    that user's. ``folders=False`` offers no folder upload and refuses
    a folder's session."""

    widget = DirectUploadWidget

    def __init__(
        self,
        *,
        user: AbstractBaseUser | AnonymousUser | None = None,
        folders: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.user = user
        self.folders = folders
        if isinstance(self.widget, DirectUploadWidget):
            self.widget.folders = folders

    def to_python(self, data: Any) -> Any:
        if isinstance(data, str):
            return data.strip() or None
        return super().to_python(data)

    def clean(self, data: Any, initial: Any = None) -> Any:
        value = super().clean(data, initial)
        if isinstance(value, str):
            session = finished_session(value, user=self.user)
            if not self.folders and session.kind == session.Kind.FOLDER:
                raise ValidationError(FOLDER_UPLOAD, code="folder_upload")
            return session
        return value


def limit_uploads_to(form: forms.BaseForm, user: AbstractBaseUser | AnonymousUser) -> None:
    """Make every direct-upload field of ``form`` take only ``user``'s finished uploads
    (call it in the view, after building the form, with ``request.user``)."""
    for field in form.fields.values():
        if isinstance(field, DirectUploadFileField):
            field.user = user


class DatasetUploadField(DirectUploadFileField):
    """A dataset, uploaded straight to the external store (a file or a folder) or through
    the form (a file).

    Cleans to a :class:`~..models.Dataset`: a finished direct upload's row (saved; a
    folder's has ``file_count`` and, once verified, its manifest as the object), or an
    unsaved ``Dataset(name=<file name>, file=<the file>, uploaded_by=<user>)`` when the
    file came through the form; ``dataset.save()`` then stores it. The direct upload's
    row comes without :data:`SERVER_FIELDS` loaded, so its ``save()`` writes only the
    others (name, description...) while the server may be recording the SHA-256; reading
    such a field loads it fresh. An empty, not required field cleans to ``None``.
    Required and empty values behave as in Django's ``FileField``."""

    def clean(self, data: Any, initial: Any = None) -> Dataset | None:
        value = super().clean(data, initial)
        if isinstance(value, Dataset):  # the initial value
            return value
        if value is None or value is False:
            return None
        if isinstance(value, UploadedFile):
            name = posixpath.basename(str(value.name or "")) or "dataset"
            user = self.user if self.user is not None and self.user.is_authenticated else None
            return Dataset(
                name=name[:_NAME_LENGTH], file=value, uploaded_by_id=user.pk if user else None
            )
        from .session import UploadSession

        if not isinstance(value, UploadSession) or value.dataset is None:
            raise ValidationError(UNKNOWN_UPLOAD, code="unknown_upload")
        dataset = Dataset.objects.defer(*SERVER_FIELDS).filter(pk=value.dataset.pk).first()
        if dataset is None:  # deleted since finished_session() found it
            raise ValidationError(UNKNOWN_UPLOAD, code="unknown_upload")
        return dataset


class DatasetAdminForm(forms.ModelForm):  # type: ignore[type-arg]
    """The admin's dataset form: name, file and description.

    On the add page the file may be a finished direct upload (a file or a folder):
    :meth:`clean` then makes the upload's ``Dataset`` row the form's instance (so saving
    updates that row with the form's name and description instead of inserting another)
    and keeps the row's key. ``direct_session`` is that session (else ``None``); the
    admin checks that its user is the request's. An uploaded file is handled as by any
    model form. An empty name takes the file's (or the folder's).
    """

    direct_session: UploadSession | None

    class Meta:
        model = Dataset
        fields = ("name", "file", "description")
        field_classes: ClassVar[dict[str, type[forms.Field]]] = {"file": DirectUploadFileField}
        widgets: ClassVar[dict[str, type[forms.Widget]]] = {"file": DirectUploadWidget}
        help_texts: ClassVar[dict[str, str]] = {
            "name": "A human-readable name; empty: the file's (or folder's) name."
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.direct_session = None
        self.adding = self.instance._state.adding
        if "name" in self.fields:
            self.fields["name"].required = False
        field = self.fields.get("file")
        if field is not None and isinstance(field.widget, DirectUploadWidget):
            field.widget.direct = self.adding

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        from .session import UploadSession

        value = cleaned.get("file")
        if isinstance(value, UploadSession):
            if not self.adding:
                self.add_error(
                    "file", "A direct upload makes a new dataset; add it from the add page."
                )
                return cleaned
            dataset = value.dataset
            assert dataset is not None  # finished_session() checked it
            self.direct_session = value
            self.instance = dataset
            cleaned["file"] = dataset.key  # construct_instance() keeps the key
            if not cleaned.get("name"):
                cleaned["name"] = dataset.name or posixpath.basename(dataset.key)
            if not cleaned.get("description"):
                cleaned["description"] = dataset.description
        elif isinstance(value, UploadedFile) and not cleaned.get("name"):
            base = posixpath.basename(str(value.name or ""))
            cleaned["name"] = base[:_NAME_LENGTH]
        missing_name = "name" in self.fields and not cleaned.get("name")
        if missing_name and not {"name", "file"} & set(self.errors):
            self.add_error("name", self.fields["name"].error_messages["required"])
        return cleaned

    def save(self, commit: bool = True) -> Dataset:
        """Save the form. For a direct upload only the form's fields are written (the
        server's check may be filling in the row's SHA-256 and status meanwhile); with
        ``commit=False`` (the admin) the row's other fields are read again first, and
        the caller should save with ``update_fields=form.direct_update_fields()``."""
        if self.direct_session is None:
            dataset: Dataset = super().save(commit)
            return dataset
        dataset = super().save(commit=False)  # writes nothing; sets save_m2m()
        dataset.refresh_from_db(fields=self._server_fields())
        if commit:
            dataset.save(update_fields=self.direct_update_fields())
            self.save_m2m()
        return dataset

    def direct_update_fields(self) -> list[str]:
        """The columns saving a direct upload's row may write: the form's fields, and
        who uploaded it and when the row changed."""
        return [
            *(name for name in self._meta.fields or () if name != "file"),
            "uploaded_by",
            "updated_at",
        ]

    def _server_fields(self) -> list[str]:
        written = {"id", *self.direct_update_fields(), "file"}
        return [f.attname for f in Dataset._meta.concrete_fields if f.name not in written]
