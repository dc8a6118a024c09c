"""Hostile music files: import, `check` and every reading of a file survive them with a clear reason.

Every file is made by the test: zip bombs, oversized files (sparse, so they cost no disk), names that
aren't UTF-8, byte-order marks, FIFOs, symbolic links, entity attacks. One bad item never aborts an
import, and `corpus list` / `corpus show` keep working.
"""

from __future__ import annotations

import codecs
import json
import os
import struct
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mido
import pytest
from click.testing import CliRunner, Result

from tui_composer.cli.app import cli
from tui_composer.music.export import parse_piece
from tui_composer.music.files import MIB, MXL_MAX_UNPACKED_BYTES, MusicFileError, check_music_file
from tui_composer.plugin.contract import EncodeError, Piece
from tui_composer.services.corpora import MAX_FILE_BYTES, read_folder
from tui_composer.services.studio import Studio

JIG = "X:1\nT:Good Jig\nM:6/8\nL:1/8\nK:G\nGAB cde|dBG A2D|GAB cde|dBG G3:|\n"
AIR = "X:1\nT:Good Air\nM:3/4\nL:1/4\nK:C\nC D E|F G A|B c2|]\n"
MUSICXML = """<?xml version="1.0" encoding="UTF-8"?>
{doctype}<score-partwise version="3.1">
  <part-list><score-part id="P1"><part-name>{name}</part-name></score-part></part-list>
  <part id="P1"><measure number="1">
    <attributes><divisions>1</divisions><time><beats>4</beats><beat-type>4</beat-type></time></attributes>
    <note><pitch><step>C</step><octave>4</octave></pitch><duration>4</duration><type>whole</type></note>
  </measure></part>
</score-partwise>
"""
XXE = '<!DOCTYPE score-partwise [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
LAUGHS = (
    "<!DOCTYPE score-partwise [\n"
    + '<!ENTITY lol0 "lol">\n'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">\n' for i in range(1, 10))
    + "]>\n"
)
NOT_UTF8 = os.fsdecode(b"caf\xe9.abc")  # a Latin-1 file name, as a Linux file system hands it over


def musicxml(doctype: str = "", name: str = "&xxe;") -> str:
    return MUSICXML.format(doctype=doctype, name=name if doctype else "Piano")


def write_mxl(path: Path, entries: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data)  # ZipInfo keeps a name like ../../x.xml as it is
    return path


def write_bomb(path: Path, unpacked_mib: int) -> Path:
    """An .mxl of one XML entry that unpacks to `unpacked_mib` MiB of blanks after a MusicXML prolog.

    Deflate blocks after a full flush don't depend on what came before, so one compressed MiB is
    repeated: a 1 GiB bomb is written in a second, not the minute zlib would take.
    """
    head = b'<?xml version="1.0" encoding="UTF-8"?>\n<score-partwise version="3.1"><part-list/>'
    tail = b"</score-partwise>\n"
    blank = b" " * MIB
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(blank) + compressor.flush(zlib.Z_FULL_FLUSH)
    last = compressor.compress(tail) + compressor.flush()
    crc = zlib.crc32(head)
    for _ in range(unpacked_mib):
        crc = zlib.crc32(blank, crc)
    crc = zlib.crc32(tail, crc)
    size = len(head) + unpacked_mib * MIB + len(tail)
    packed = len(first) + unpacked_mib * len(block) + len(last)
    name = b"score.xml"
    with path.open("wb") as out:
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 33, crc, packed, size, len(name), 0) + name)
        out.write(first)
        for _ in range(unpacked_mib):
            out.write(block)
        out.write(last)
        directory_at = out.tell()
        out.write(
            struct.pack(
                "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 33, crc, packed, size, len(name), 0, 0, 0, 0, 0, 0
            )
            + name
        )
        directory_size = out.tell() - directory_at
        out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, directory_size, directory_at, 0))
    return path


def write_midi(path: Path, pitches: list[int]) -> Path:
    track = mido.MidiTrack()
    for pitch in pitches:
        track.append(mido.Message("note_on", note=pitch, velocity=64, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=240))
    mido.MidiFile(tracks=[track]).save(path)
    return path


def sparse(path: Path, size: int, head: bytes = b"") -> Path:
    """A file of `size` bytes that takes no disk: only `head` is written."""
    with path.open("wb") as out:
        out.write(head)
        out.truncate(size)
    return path


def non_utf8_names_allowed(folder: Path) -> bool:
    try:
        (folder / NOT_UTF8).write_text(JIG, encoding="utf-8")
    except (OSError, UnicodeEncodeError):
        return False  # e.g. macOS APFS refuses such names
    (folder / NOT_UTF8).unlink()
    return True


@contextmanager
def fifo_watchdog(fifo: Path, after: float = 10.0) -> Iterator[list[float]]:
    """After `after` seconds, release any reader stuck opening `fifo` (by opening its write end).

    Yields a list that gets an entry per release: a test asserts it stays empty, and old code that
    blocks on the FIFO fails instead of hanging the suite.
    """
    released: list[float] = []
    done = threading.Event()

    def watch() -> None:
        if done.wait(after):
            return
        while not done.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody is reading
                time.sleep(0.05)
                continue
            released.append(time.monotonic())
            os.close(fd)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield released
    finally:
        done.set()
        watcher.join()


def invoke(studio: Studio, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--workspace", str(studio.workspace.root), *args], obj=studio.host)


def musicxml_piece(path: Path) -> Piece:
    return Piece(key=path.name, title=path.stem, format="musicxml", path=path)


# --- 1. MusicXML archives: zip bombs, zip slip, XXE, billion laughs ------------------------------------


def test_an_mxl_that_unpacks_to_a_gibibyte_is_refused_from_its_zip_directory(studio: Studio, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    bomb = write_bomb(folder / "bomb.mxl", 1024)
    assert bomb.stat().st_size < 1.1 * MIB
    (folder / "jig.abc").write_text(JIG, encoding="utf-8")

    report = studio.catalogue.import_path(folder, "bombed")
    reasons = {item.item: item.reason for item in report.skipped}
    assert report.kept == 1
    assert reasons["bomb.mxl"] == (
        "unpacks to 1024.0 MiB, over the 64 MiB cap for a MusicXML archive (checked before unpacking)"
    )
    with pytest.raises(EncodeError, match=r"unpacks to 1024\.0 MiB, over the 64 MiB cap"):
        parse_piece(musicxml_piece(bomb))


def test_an_mxl_compressed_more_than_a_hundred_times_is_refused(tmp_path: Path) -> None:
    bomb = write_bomb(tmp_path / "dense.mxl", 40)  # under the unpacked cap, but 1,000 times smaller packed
    assert bomb.stat().st_size * 40 < MXL_MAX_UNPACKED_BYTES
    with pytest.raises(MusicFileError, match=r"compressed 1,0\d\d times \(40.\d KiB unpacks to 40.0 MiB\)"):
        check_music_file(bomb, "musicxml", MAX_FILE_BYTES["musicxml"])


def test_zip_slip_xxe_and_billion_laughs_are_refused_and_real_scores_pass(studio: Studio, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_mxl(folder / "slip.mxl", {"../../escaped.xml": musicxml(), "score.xml": musicxml()})
    (folder / "xxe.musicxml").write_text(musicxml(XXE), encoding="utf-8")
    (folder / "laughs.xml").write_text(musicxml(LAUGHS, "&lol9;"), encoding="utf-8")
    write_mxl(folder / "zipped-xxe.mxl", {"score.xml": musicxml(XXE)})
    write_mxl(folder / "good.mxl", {"META-INF/container.xml": "<container/>", "score.xml": musicxml()})
    (folder / "good.musicxml").write_text(musicxml(), encoding="utf-8")

    report = studio.catalogue.import_path(folder, "xml")
    reasons = {item.item: item.reason for item in report.skipped}
    assert report.kept == 2, reasons
    assert reasons["slip.mxl"] == "entry '../../escaped.xml' leads outside the archive (zip slip); refused"
    assert reasons["xxe.musicxml"].startswith("declares the XML entity 'xxe'; entities can expand without bound")
    assert reasons["zipped-xxe.mxl"].startswith("declares the XML entity 'xxe'")
    assert reasons["laughs.xml"].startswith("declares the XML entity 'lol0'")
    assert not list(tmp_path.rglob("escaped.xml"))
    for name in ("xxe.musicxml", "laughs.xml", "slip.mxl"):
        with pytest.raises(EncodeError, match=r"entity|zip slip"):
            parse_piece(musicxml_piece(folder / name))
    # The checks pass real archives: every Bach chorale music21 ships.
    from tui_composer_corpora import music21_corpus_dir

    chorales, _ = read_folder(music21_corpus_dir() / "bach", ("bwv*.mxl",))
    assert len(chorales) > 300
    for chorale in chorales:
        check_music_file(chorale.path, "musicxml", MAX_FILE_BYTES["musicxml"])


# --- 2. size caps, checked with stat before reading -----------------------------------------------------


def test_files_over_their_format_cap_are_skipped_naming_the_cap_and_the_size(studio: Studio, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    sparse(folder / "huge.mid", 50_000_000, b"MThd")
    sparse(folder / "huge.abc", 9 * MIB, JIG.encode())
    sparse(folder / "huge.musicxml", 33 * MIB, musicxml().encode())
    write_midi(folder / "scale.mid", [60, 62, 64, 65, 67])

    report = studio.catalogue.import_path(folder, "capped")
    reasons = {item.item: item.reason for item in report.skipped}
    assert report.kept == 1
    assert reasons["huge.mid"] == "47.7 MiB, over the 4 MiB cap for MIDI files; leave it out or split it"
    assert reasons["huge.abc"] == "9.0 MiB, over the 8 MiB cap for ABC files; leave it out or split it"
    assert reasons["huge.musicxml"].startswith("33.0 MiB, over the 32 MiB cap for MusicXML files")
    midi = Piece(key="huge.mid", title="huge", format="midi", path=folder / "huge.mid")
    with pytest.raises(EncodeError, match=r"47\.7 MiB, over the 4 MiB cap"):
        parse_piece(midi)
    abc = Piece(key="huge.abc#1", title="huge", format="abc", path=folder / "huge.abc")
    with pytest.raises(EncodeError, match=r"9\.0 MiB, over the 8 MiB cap"):
        parse_piece(abc)
    result = invoke(studio, "check", str(folder / "huge.abc"))
    assert result.exit_code == 1 and "9.0 MiB, over the 8 MiB cap for ABC files" in result.output


# --- 3. and 4. file names: '#', and bytes that aren't UTF-8 ----------------------------------------------


def test_a_file_name_with_a_hash_is_imported(studio: Studio, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "hash#1.abc").write_text(JIG, encoding="utf-8")
    (folder / "plain.abc").write_text(AIR, encoding="utf-8")
    report = studio.catalogue.import_path(folder, "hashes")
    assert report.kept == 2 and report.skipped == []
    corpus = studio.catalogue.get("hashes")
    assert sorted(p.key for p in corpus.pieces) == ["hash#1.abc#1", "plain.abc#1"]
    assert (studio.workspace.corpora_dir / "hashes" / "files" / "hash#1.abc").read_text() == JIG


def test_a_name_that_is_not_utf8_is_skipped_and_listings_keep_working(studio: Studio, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    if not non_utf8_names_allowed(folder):
        pytest.skip("this file system refuses names that aren't UTF-8")
    (folder / NOT_UTF8).write_text(JIG, encoding="utf-8")
    (folder / os.fsdecode(b"dossier-\xff")).mkdir()
    (folder / os.fsdecode(b"dossier-\xff") / "inside.abc").write_text(JIG, encoding="utf-8")
    (folder / "plain.abc").write_text(AIR, encoding="utf-8")

    report = studio.catalogue.import_path(folder, "names")
    reasons = {item.item: item.reason for item in report.skipped}
    assert report.kept == 1
    assert reasons["caf\\xe9.abc"].startswith("file name is not valid UTF-8; rename it to UTF-8")
    assert reasons["dossier-\\xff"].startswith("folder name is not valid UTF-8")
    listing = invoke(studio, "corpus", "list", "--json")
    assert listing.exit_code == 0, listing.output
    assert {c["name"]: c["pieces"] for c in json.loads(listing.output)}["names"] == 1
    shown = invoke(studio, "corpus", "show", "names")
    assert shown.exit_code == 0, shown.output
    assert "caf\\xe9.abc: file name is not valid UTF-8" in shown.output


def test_a_corpus_imported_by_an_older_version_with_such_a_name_still_lists(studio: Studio, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    if not non_utf8_names_allowed(folder):
        pytest.skip("this file system refuses names that aren't UTF-8")
    (folder / "plain.abc").write_text(AIR, encoding="utf-8")
    studio.catalogue.import_path(folder, "old")
    # What the old import wrote: the undecodable byte as a lone surrogate in keys, items and paths.
    corpus_folder = studio.workspace.corpora_dir / "old"
    (corpus_folder / "files" / NOT_UTF8).write_text(JIG, encoding="utf-8")
    manifest = json.loads((corpus_folder / "manifest.json").read_text())
    manifest["pieces"].append(f"{NOT_UTF8}#1")
    manifest["skipped"] = [{"item": f"{NOT_UTF8}#2", "reason": "does not parse"}]
    manifest["source"] = os.fsdecode(b"/home/caf\xe9")
    (corpus_folder / "manifest.json").write_text(json.dumps(manifest))
    (studio.workspace.corpora_dir / "broken").mkdir()
    (studio.workspace.corpora_dir / "broken" / "manifest.json").write_text("{not json")

    listing = invoke(studio, "corpus", "list", "--json")
    assert listing.exit_code == 0, listing.output
    rows = {c["name"]: c for c in json.loads(listing.output)}
    assert rows["old"]["pieces"] == 1
    assert rows["broken"]["kind"] == "unreadable" and "manifest.json is damaged" in rows["broken"]["error"]
    table = invoke(studio, "corpus", "list")
    assert table.exit_code == 0 and "broken: " in table.output
    shown = invoke(studio, "corpus", "show", "old")
    assert shown.exit_code == 0, shown.output
    assert "caf\\xe9.abc#2: does not parse" in shown.output and "source: /home/caf\\xe9" in shown.output


# --- 5. encodings --------------------------------------------------------------------------------------


def test_a_byte_order_mark_is_read_and_utf16_is_named(studio: Studio, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bom.abc").write_bytes(codecs.BOM_UTF8 + JIG.encode())
    (folder / "wide.abc").write_bytes(AIR.encode("utf-16"))  # with its byte-order mark
    (folder / "wide-no-mark.abc").write_bytes(AIR.encode("utf-16-le"))

    report = studio.catalogue.import_path(folder, "encodings")
    reasons = {item.item: item.reason for item in report.skipped}
    assert report.kept == 1
    assert [p.title for p in studio.catalogue.get("encodings").pieces] == ["Good Jig"]
    assert reasons["wide.abc"] == "UTF-16 text, not UTF-8; convert it with `iconv -f utf-16 -t utf-8`"
    assert reasons["wide-no-mark.abc"].startswith("UTF-16 (little-endian, without a byte-order mark) text")
    result = invoke(studio, "check", str(folder / "bom.abc"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["ok"]
    result = invoke(studio, "check", str(folder / "wide.abc"))
    assert result.exit_code == 1
    assert "wide.abc: UTF-16 text, not UTF-8; convert it with `iconv -f utf-16 -t utf-8`" in result.output


# --- 6. FIFOs and other files that aren't regular --------------------------------------------------------


def test_fifos_are_skipped_with_a_reason_and_never_block(studio: Studio, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    fifo = folder / "pipe.abc"
    os.mkfifo(fifo)
    (folder / "jig.abc").write_text(JIG, encoding="utf-8")
    started = time.monotonic()
    with fifo_watchdog(fifo) as released:
        report = studio.catalogue.import_path(folder, "piped")
        alone = studio.catalogue.import_path(fifo, "only-a-pipe")
        checked = invoke(studio, "check", str(fifo))
        with pytest.raises(EncodeError, match="not a regular file"):
            parse_piece(Piece(key="pipe.abc", title="", format="midi", path=fifo))
    assert released == [], "something blocked opening the FIFO"
    assert time.monotonic() - started < 10
    fifo_reason = "not a regular file (a FIFO); only regular files are read"
    assert report.kept == 1 and {s.item: s.reason for s in report.skipped} == {"pipe.abc": fifo_reason}
    assert alone.kept == 0 and [(s.item, s.reason) for s in alone.skipped] == [("pipe.abc", fifo_reason)]
    assert checked.exit_code == 1 and f"pipe.abc: {fifo_reason}" in checked.output


# --- 7. `check` on something that holds no tune -----------------------------------------------------------


def test_check_on_a_file_without_a_tune_says_why_and_fails(studio: Studio, tmp_path: Path) -> None:
    prose = tmp_path / "readme.abc"
    prose.write_text("notes about the tunes, and where they came from\n", encoding="utf-8")
    result = invoke(studio, "check", str(prose))
    assert result.exit_code == 1
    assert "readme.abc holds no ABC tune: no X: line (a tune starts with one) and no K: line" in result.output
    header = tmp_path / "header.abc"
    header.write_text("T:Only a header\nM:6/8\nK:G\n", encoding="utf-8")
    result = invoke(studio, "check", str(header))
    assert result.exit_code == 1 and "header.abc holds no ABC tune: no X: line, and read as one tune" in result.output
    noise = tmp_path / "noise.abc"
    noise.write_bytes(bytes(range(256)) * 4)
    result = invoke(studio, "check", str(noise))
    assert result.exit_code == 1 and "noise.abc: binary data, not ABC text" in result.output


# --- 8. symbolic links and paths that lead outside ---------------------------------------------------------


def test_symbolic_links_are_not_followed(studio: Studio, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.abc").write_text(JIG, encoding="utf-8")
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "air.abc").write_text(AIR, encoding="utf-8")
    os.symlink(outside / "secret.abc", folder / "to-file.abc")
    os.symlink(outside, folder / "to-folder")
    os.symlink(folder / "sub" / "air.abc", folder / "inside-link.abc")
    os.symlink(tmp_path, folder / "sub" / "up")

    report = studio.catalogue.import_path(folder, "linked")
    reasons = {item.item: item.reason for item in report.skipped}
    assert report.kept == 1
    assert reasons == dict.fromkeys(
        ["to-file.abc", "to-folder", "inside-link.abc", "sub/up"], "symbolic link, not followed"
    )
    files = studio.workspace.corpora_dir / "linked" / "files"
    assert sorted(p.relative_to(files).as_posix() for p in files.rglob("*")) == ["sub", "sub/air.abc"]
    assert not any(p.is_symlink() for p in files.rglob("*"))


# --- 9. everything at once: the batch keeps the good and lists each bad item ------------------------------


def hostile_folder(root: Path) -> Path:
    """A folder holding one of each hostile item above, and two good tunes."""
    folder = root / "hostile"
    folder.mkdir()
    (folder / "hash#1.abc").write_text(JIG, encoding="utf-8")
    (folder / "air.abc").write_text(AIR, encoding="utf-8")
    write_bomb(folder / "bomb.mxl", 1024)
    write_bomb(folder / "dense.mxl", 40)
    write_mxl(folder / "slip.mxl", {"../../escaped.xml": musicxml()})
    (folder / "xxe.xml").write_text(musicxml(XXE), encoding="utf-8")
    (folder / "laughs.xml").write_text(musicxml(LAUGHS, "&lol9;"), encoding="utf-8")
    sparse(folder / "huge.mid", 50_000_000, b"MThd")
    sparse(folder / "huge.abc", 9 * MIB, JIG.encode())
    (folder / "wide.abc").write_bytes(JIG.encode("utf-16"))
    os.mkfifo(folder / "pipe.abc")
    os.symlink(root, folder / "up")
    (folder / "noise.abc").write_bytes(bytes(range(256)) * 4)
    (folder / "prose.abc").write_text("no tune here\n", encoding="utf-8")
    if non_utf8_names_allowed(folder):
        (folder / NOT_UTF8).write_text(JIG, encoding="utf-8")
    return folder


HOSTILE_ITEMS = {
    "bomb.mxl",
    "dense.mxl",
    "slip.mxl",
    "xxe.xml",
    "laughs.xml",
    "huge.mid",
    "huge.abc",
    "wide.abc",
    "pipe.abc",
    "up",
    "noise.abc",
    "prose.abc",
}


def test_one_bad_item_never_aborts_the_batch(studio: Studio, tmp_path: Path) -> None:
    folder = hostile_folder(tmp_path)
    with fifo_watchdog(folder / "pipe.abc") as released:
        report = studio.catalogue.import_path(folder, "hostile")
    assert released == []
    reasons = {item.item: item.reason for item in report.skipped}
    assert report.kept == 2
    assert set(reasons) - {"caf\\xe9.abc"} == HOSTILE_ITEMS
    assert all(reason.strip() for reason in reasons.values())
    assert sorted(p.key for p in studio.catalogue.get("hostile").pieces) == ["air.abc#1", "hash#1.abc#1"]
    listing = invoke(studio, "corpus", "list", "--json")
    assert listing.exit_code == 0, listing.output
    assert {c["name"]: c["pieces"] for c in json.loads(listing.output)}["hostile"] == 2
    shown = invoke(studio, "corpus", "show", "hostile")
    assert shown.exit_code == 0, shown.output
    for item, reason in reasons.items():
        assert f"  {item}: {reason}" in shown.output


PEAK_RSS = """
import resource, subprocess, sys
subprocess.run([sys.executable, "-m", "tui_composer", "corpus", "import", sys.argv[1], "--name", "hostile"], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


@pytest.mark.slow
def test_the_import_of_the_hostile_folder_peaks_under_a_gigabyte(tmp_path: Path) -> None:
    folder = hostile_folder(tmp_path)
    env = {**os.environ, "TUI_COMPOSER_HOME": str(tmp_path / "home")}
    # a process of its own that runs the import: its children's peak is the import's alone
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(folder)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    peak_kib = int(result.stdout.split()[-1])  # ru_maxrss is in KiB on Linux
    print(f"peak RSS of the import: {peak_kib / 1024:.0f} MiB")
    assert peak_kib * 1024 < 1e9
