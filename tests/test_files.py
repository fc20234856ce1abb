"""Reading the user's files (harness/files.py): what each wrong path or byte becomes."""
from __future__ import annotations

import gzip

import pytest

from harness.errors import UserError
from harness.files import check_output_file, check_writable_dir, iter_lines, read_text


def test_lines_read_as_text_mode_would_bom_and_crlf_included(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"\xef\xbb\xbfone\r\ntwo\nthree")
    assert list(iter_lines(p, "file")) == ["one\n", "two\n", "three"]
    gz = tmp_path / "a.txt.gz"
    gz.write_bytes(gzip.compress("un\ndeux\n".encode()))
    assert read_text(gz, "file") == "un\ndeux\n"


def test_a_bad_byte_is_reported_at_its_line_and_column(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": "caf\xe9"}\n')
    with pytest.raises(UserError) as e:
        list(iter_lines(p, "data file"))
    assert str(e.value) == f"{p}:3: not UTF-8 text (byte 0xe9 at column 11): save the file as UTF-8"


def test_a_truncated_gzip_names_the_last_good_line(tmp_path):
    p = tmp_path / "a.gz"
    p.write_bytes(gzip.compress(("line\n" * 5000).encode())[:60])
    with pytest.raises(UserError, match=r"corrupt or truncated gzip file after line \d+"):
        list(iter_lines(p, "data file"))


def test_directories_and_files_in_the_wrong_place(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="data file is a directory, expected a file"):
        read_text(tmp_path, "data file")
    with pytest.raises(UserError, match=f"{tmp_path / 'f'}: is a file, but --run-dir"):
        check_writable_dir(tmp_path / "f" / "sub" / "run", "--run-dir")
    with pytest.raises(UserError, match="report output is a directory: give a file name"):
        check_output_file(tmp_path, "report output")
    assert check_writable_dir(tmp_path / "new" / "run", "--run-dir") == tmp_path / "new" / "run"
    assert not (tmp_path / "new").exists()     # checking never creates anything
