"""Text of the CSV files people export from spreadsheets and ERPs.

Excel on a Chinese Windows saves GBK; elsewhere UTF-8 (often with a BOM) or UTF-16.
"""

from __future__ import annotations

import codecs

from libs.platform.errors import Unprocessable


def decode_spreadsheet(content: bytes) -> str:
    """The file's text: UTF-8 with or without BOM, UTF-16 with BOM, else GBK (read as
    GB18030, its superset); a 422 on ``file`` for anything else."""
    if content.startswith(codecs.BOM_UTF8):
        encodings = ["utf-8-sig"]
    elif content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ["utf-16"]
    else:
        encodings = ["utf-8", "gb18030"]
    for encoding in encodings:
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise Unprocessable("file", "is neither UTF-8 nor GBK text")
