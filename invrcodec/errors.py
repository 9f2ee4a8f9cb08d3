"""The one exception tree of invrcodec.

Everything the library raises on purpose derives from :class:`InvrError`; the command-line tools turn
it into a single ``tool: error: ...`` line. Only :class:`InvrFormatError` and its subclasses may escape
the demuxer, whatever bytes it is given (spec/invr-format.md, "Error handling").
"""

from __future__ import annotations


class InvrError(Exception):
    """Base of every error invrcodec raises deliberately."""


class InvrFormatError(InvrError):
    """A .invr byte stream is malformed, damaged or unsupported.

    ``offset`` is the byte offset where the problem was found, when known.
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class TruncatedError(InvrFormatError):
    """The stream ends before a structure it announced."""


class ChecksumError(InvrFormatError):
    """A CRC32 does not match the bytes it covers."""


class UnsupportedVersionError(InvrFormatError):
    """The file's major version is not one this reader implements."""


class MalformedError(InvrFormatError):
    """A field holds a value the specification does not allow."""


class InvrMediaError(InvrError):
    """Input media cannot be used (not video, no frames, unsupported pixel format...)."""


class InvrEncodeError(InvrError):
    """Encoding failed (for example a chunk whose training diverged on every retry)."""


class InvrConfigError(InvrError, ValueError):
    """An encoder or decoder setting is out of range or inconsistent."""


class InvrLimitError(InvrError):
    """A lawful file whose decode would exceed a limit the caller set (for example ``--max-pixels``)."""
