"""Building the Go servers into a cache: once, atomically, with one line when it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.runtime import go_build as gb


def test_an_existing_binary_is_not_built_again(tmp_path: Path) -> None:
    target = tmp_path / "bin" / "server-v1"
    target.parent.mkdir()
    target.write_text("built before")
    assert gb.go_build(tmp_path / "nowhere", target, what="x", timeout=5, missing="-") == target
    assert target.read_text() == "built before"


def test_without_go_the_error_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gb.shutil, "which", lambda _name: None)
    monkeypatch.setattr(gb, "GO_FALLBACK", tmp_path / "no-go")
    with pytest.raises(gb.GoBuildError, match=r"objectstore: Go is needed to build it \(or set object_store"):
        gb.go_build(tmp_path, tmp_path / "weed", what="objectstore", timeout=5, missing="or set object_store.endpoint")


def test_a_failed_build_leaves_nothing_and_names_the_error_in_one_line(tmp_path: Path) -> None:
    if gb.shutil.which("go") is None and not gb.GO_FALLBACK.exists():
        pytest.skip("no Go on this machine")
    (tmp_path / "go.mod").write_text("module example.com/broken\n\ngo 1.22\n")
    (tmp_path / "main.go").write_text("package main\n\nfunc main() { undefinedCall() }\n")
    target = tmp_path / "out" / "broken"
    with pytest.raises(gb.GoBuildError) as failure:
        gb.go_build(tmp_path, target, what="broken", timeout=120, missing="-")
    message = str(failure.value)
    assert message.startswith("broken: the build failed:") and "\n" not in message
    assert "undefined" in message
    assert not target.exists() and not list(target.parent.glob("*.partial"))
