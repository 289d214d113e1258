import io
import sys

from fashionlens.jobs.output import open_text_output


def test_path_is_created_with_parent_folders(tmp_path):
    target = tmp_path / "a" / "b" / "out.jsonl"
    with open_text_output(target) as fh:
        fh.write("é\n")
    assert target.read_text(encoding="utf-8") == "é\n"


def test_stream_is_used_as_is_and_left_open():
    buf = io.StringIO()
    with open_text_output(buf) as fh:
        fh.write("x")
    assert fh is buf and not buf.closed and buf.getvalue() == "x"


def test_none_and_dash_mean_stdout():
    for target in (None, "-"):
        with open_text_output(target) as fh:
            assert fh is sys.stdout
