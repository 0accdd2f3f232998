"""A file uploaded to Flow (multipart), its size checked before it is read."""
from __future__ import annotations

from fastapi import Request

from deepwater.flow.refusals import FieldError


async def read_upload(request: Request, limit: int) -> tuple[bytes, str | None, str | None]:
    """The bytes, file name and frame name of a multipart upload (field 'file', optional field 'name'), refused
    before it is read when its announced size is over `limit` bytes (or not announced)."""
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise FieldError("file", "the upload does not announce its size (Content-Length); send it with one.", 411)
    if int(length) > limit:
        raise FieldError("file", f"the upload ({int(length):,} bytes) is larger than the {limit:,} bytes Flow takes "
                                 "(--max-upload-mb); import a larger file by path under --allow-dir.", 413)
    form = await request.form(max_files=1, max_fields=4)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise FieldError("file", "missing: send the file as the multipart field 'file'.")
    name = form.get("name")
    return await upload.read(), upload.filename, name if isinstance(name, str) and name else None
