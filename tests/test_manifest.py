"""Manifests name the command, commit, config, seeds, data and machine of a result."""

from __future__ import annotations

import subprocess
from pathlib import Path

from seal.manifest import manifest


def test_manifest_records_how_a_result_was_made(monkeypatch):
    import seal.manifest as mf

    monkeypatch.setattr(mf, "_started", {})  # (a CLI test in this process may have noted its start commit)
    m = manifest(command=["seal", "eval", "knowledge", "--limit", "2"], config={"lr": 1e-3}, seeds=[0, 1],
                 data=["squad_dev.json[0:2]"], wall_s=1.234)
    assert m["command"] == "seal eval knowledge --limit 2"
    assert m["config"] == {"lr": 1e-3} and m["seeds"] == [0, 1] and m["data"] == ["squad_dev.json[0:2]"]
    assert m["wall_s"] == 1.23 and m["machine"]["torch"] and m["machine"]["cpu"] and m["machine"]["cores"] >= 1
    root = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    if head.returncode == 0:  # (a source tree outside git has no commit to name)
        assert m["commit"].split("+")[0] == head.stdout.strip()


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def test_only_code_changes_make_the_commit_dirty(tmp_path):
    import seal.manifest as mf

    for rel in ("src/a.py", "results/r.json", "README.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    head = _git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "results/r.json").write_text("2\n")  # another result written, the README regenerated
    (tmp_path / "README.md").write_text("2\n")
    assert mf.git_commit(tmp_path / "src") == head
    (tmp_path / "src/a.py").write_text("2\n")  # the code itself changed
    assert mf.git_commit(tmp_path / "src") == head + "+dirty"


def test_a_manifest_names_the_commit_its_command_started_on(monkeypatch):
    import seal.manifest as mf

    monkeypatch.setattr(mf, "_started", {})
    monkeypatch.setattr(mf, "git_commit", lambda cwd=None: "aaaa")
    mf.record_start()
    monkeypatch.setattr(mf, "git_commit", lambda cwd=None: "bbbb")  # a commit made while the command ran
    assert mf.manifest(command="seal eval knowledge")["commit"] == "aaaa"
