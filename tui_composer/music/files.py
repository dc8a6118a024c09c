"""Reading music files that may be hostile, with a clear reason for every refusal and bounded memory.

Only regular files are opened (a FIFO would block forever, a device could stream without end), and a
file's size is checked with stat against a cap before a byte is read. A MusicXML archive (`.mxl`) is
checked from its zip directory before anything is unpacked: the unpacked size, the compression ratio,
the number of entries and the entry names. XML that declares entities is refused, because entities
are how a file expands without bound (billion laughs) or reads other files (XXE); MusicXML needs none.
The caps per format are the caller's policy (`tui_composer.services.corpora.MAX_FILE_BYTES`).
"""

from __future__ import annotations

import codecs
import os
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO, NoReturn
from xml.parsers import expat

KIB = 1024
MIB = 1024 * KIB

MXL_MAX_UNPACKED_BYTES = 64 * MIB  # all entries of a .mxl together, as its zip directory declares them
MXL_MAX_RATIO = 100  # unpacked / packed; real MusicXML archives compress 10 to 30 times
MXL_RATIO_FLOOR = 1 * MIB  # below this the ratio is not judged: tiny entries of blank text compress oddly well
MXL_MAX_ENTRIES = 1_000  # a MusicXML archive holds a score, a container and perhaps a few images
XML_PROLOG_LIMIT = 1 * MIB  # the root element must start within this: entities are declared before it
_PROLOG_CHUNK = 64 * KIB


class MusicFileError(Exception):
    """A music file that is refused before it is parsed; `reason` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def printable(text: str) -> str:
    """A path or name as it can always be printed: bytes that aren't UTF-8 become `\\xNN`."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def is_utf8_name(name: str) -> bool:
    """Whether a file name from the file system decoded as UTF-8 (undecodable bytes come as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def size_text(size: int) -> str:
    """A byte count for a message: `50.0 MiB`, `12.5 KiB`, `300 bytes`."""
    if size >= MIB:
        return f"{size / MIB:.1f} MiB"
    if size >= KIB:
        return f"{size / KIB:.1f} KiB"
    return f"{size} bytes"


def _cap_text(cap: int) -> str:
    return f"{cap // MIB} MiB" if cap % MIB == 0 else size_text(cap)


def kind_of(mode: int) -> str:
    """What a non-regular file is, for a reason: `a FIFO`, `a directory`, ..."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def not_regular_reason(mode: int) -> str:
    return f"not a regular file ({kind_of(mode)}); only regular files are read"


_FORMAT_NAMES = {"abc": "ABC", "midi": "MIDI", "musicxml": "MusicXML"}


def check_size(size: int, cap: int, fmt: str) -> None:
    if size > cap:
        name = _FORMAT_NAMES.get(fmt, fmt)
        raise MusicFileError(
            f"{size_text(size)}, over the {_cap_text(cap)} cap for {name} files; leave it out or split it"
        )


def regular_file_size(path: Path, cap: int, fmt: str) -> int:
    """The size of a regular file within `cap`, from stat alone; raises MusicFileError otherwise."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise MusicFileError(f"unreadable: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise MusicFileError(not_regular_reason(info.st_mode))
    check_size(info.st_size, cap, fmt)
    return info.st_size


def open_regular(path: Path) -> BinaryIO:
    """Open a regular file for reading; anything else is refused without blocking.

    O_NONBLOCK: a FIFO put in the file's place after a stat still can't block the open.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise MusicFileError(f"unreadable: {error.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise MusicFileError(not_regular_reason(mode))
    return os.fdopen(fd, "rb")


def read_capped(path: Path, cap: int, fmt: str) -> bytes:
    """The bytes of a regular file of at most `cap` bytes (checked with stat before reading)."""
    regular_file_size(path, cap, fmt)
    with open_regular(path) as handle:
        data = handle.read(cap + 1)  # one more: a file that grew since the stat is caught too
    check_size(len(data), cap, fmt)
    return data


# --- text ---------------------------------------------------------------------------------------------


def decode_text(raw: bytes) -> str:
    """ABC bytes as text: UTF-8 with or without a byte-order mark; UTF-16/32 and binary data are named."""
    for boms, name in (
        ((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE), "UTF-32"),  # before UTF-16: FF FE 00 00 starts like FF FE
        ((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE), "UTF-16"),
    ):
        if raw.startswith(boms):
            _refuse_wide(name)
    head = raw[:4096]
    # ASCII in UTF-16 without a mark: every other byte is zero
    if len(head) >= 8 and b"\x00" not in head[0::2] and not head[1::2].strip(b"\x00"):
        _refuse_wide("UTF-16 (little-endian, without a byte-order mark)")
    if len(head) >= 8 and b"\x00" not in head[1::2] and not head[0::2].strip(b"\x00"):
        _refuse_wide("UTF-16 (big-endian, without a byte-order mark)")
    if b"\x00" in head:
        raise MusicFileError("binary data, not ABC text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise MusicFileError(
            f"not UTF-8 text (bad byte at offset {error.start}); convert it, e.g. `iconv -f latin1 -t utf-8`"
        ) from None


def _refuse_wide(name: str) -> NoReturn:
    encoding = name.split(" ", 1)[0].lower()
    raise MusicFileError(f"{name} text, not UTF-8; convert it with `iconv -f {encoding} -t utf-8`")


def read_text(path: Path, cap: int, fmt: str = "abc") -> str:
    """A text music file (ABC) within `cap`, decoded by `decode_text`."""
    return decode_text(read_capped(path, cap, fmt))


# --- MusicXML -------------------------------------------------------------------------------------------


class _RootReached(Exception):
    pass


class _EntityDeclared(Exception):
    pass


def check_xml_prolog(stream: BinaryIO) -> None:
    """Refuse XML that declares entities or isn't well-formed before its root element.

    Only the prolog is read (up to XML_PROLOG_LIMIT): entities can be declared nowhere else.
    """
    parser = expat.ParserCreate()

    def entity_declared(name: str, *_: object) -> None:
        raise _EntityDeclared(name)

    def root_started(*_: object) -> None:
        raise _RootReached

    parser.EntityDeclHandler = entity_declared
    parser.StartElementHandler = root_started
    read = 0
    try:
        while read <= XML_PROLOG_LIMIT:
            chunk = stream.read(_PROLOG_CHUNK)
            read += len(chunk)
            parser.Parse(chunk, not chunk)
            if not chunk:
                raise MusicFileError("no XML root element: not a MusicXML score")
    except _RootReached:
        return
    except _EntityDeclared as declared:
        raise MusicFileError(
            f"declares the XML entity {str(declared)!r}; entities can expand without bound or read other "
            "files, and MusicXML needs none, so the file is refused"
        ) from None
    except expat.ExpatError as error:
        raise MusicFileError(f"not well-formed XML ({expat.ErrorString(error.code)}, line {error.lineno})") from None
    raise MusicFileError(f"no XML root element in the first {_cap_text(XML_PROLOG_LIMIT)}: not a MusicXML score")


def check_mxl_archive(path: Path, cap: int) -> None:
    """Check a MusicXML archive from its zip directory before anything is unpacked.

    Refuses archives over `cap` on disk, over MXL_MAX_UNPACKED_BYTES unpacked, compressed more than
    MXL_MAX_RATIO times, with more than MXL_MAX_ENTRIES entries, with an entry name that leads out of
    the archive (zip slip), or whose XML declares entities. An .mxl that is plain XML (music21 reads
    those too) has its prolog checked instead.
    """
    packed = regular_file_size(path, cap, "musicxml")
    with open_regular(path) as handle:
        if not zipfile.is_zipfile(handle):
            handle.seek(0)
            check_xml_prolog(handle)
            return
        try:
            with zipfile.ZipFile(handle) as archive:
                _check_zip_directory(archive, packed)
                for entry in archive.infolist():
                    if PurePosixPath(entry.filename).suffix.lower() in (".xml", ".musicxml"):
                        with archive.open(entry) as member:
                            check_xml_prolog(member)  # type: ignore[arg-type]
        except (zipfile.BadZipFile, zipfile.LargeZipFile) as error:
            raise MusicFileError(f"not a readable zip archive, as .mxl must be ({error})") from None
        except (RuntimeError, NotImplementedError, zlib.error, EOFError, OSError) as error:
            raise MusicFileError(f"damaged or unsupported zip archive ({error})") from None


def _check_zip_directory(archive: zipfile.ZipFile, packed: int) -> None:
    entries = archive.infolist()
    if len(entries) > MXL_MAX_ENTRIES:
        raise MusicFileError(f"{len(entries):,} entries, over the cap of {MXL_MAX_ENTRIES:,} for a MusicXML archive")
    for entry in entries:
        if _leads_outside(entry.filename):
            raise MusicFileError(f"entry {printable(entry.filename)!r} leads outside the archive (zip slip); refused")
    unpacked = sum(entry.file_size for entry in entries)
    if unpacked > MXL_MAX_UNPACKED_BYTES:
        raise MusicFileError(
            f"unpacks to {size_text(unpacked)}, over the {_cap_text(MXL_MAX_UNPACKED_BYTES)} cap "
            "for a MusicXML archive (checked before unpacking)"
        )
    if unpacked > MXL_RATIO_FLOOR and unpacked > MXL_MAX_RATIO * max(packed, 1):
        raise MusicFileError(
            f"compressed {unpacked / max(packed, 1):,.0f} times ({size_text(packed)} unpacks to "
            f"{size_text(unpacked)}), over the {MXL_MAX_RATIO}x cap for a MusicXML archive"
        )


def _leads_outside(name: str) -> bool:
    posix = name.replace("\\", "/")
    return posix.startswith("/") or ".." in PurePosixPath(posix).parts or (len(posix) > 1 and posix[1] == ":")


def check_music_file(path: Path, fmt: str, cap: int) -> None:
    """Everything checked before a parser opens a binary music file: regular, within its cap, and for
    MusicXML a safe archive or a prolog without entities."""
    regular_file_size(path, cap, fmt)
    if fmt != "musicxml":
        return
    if path.suffix.lower() == ".mxl":
        check_mxl_archive(path, cap)
        return
    with open_regular(path) as handle:
        check_xml_prolog(handle)
