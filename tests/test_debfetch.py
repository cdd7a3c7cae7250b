"""Fetching Debian packages into the cache: which builds are newer."""
from __future__ import annotations

import subprocess

from minios_lab.build import debfetch


def test_newer_xen_build_names_only_newer_candidates(monkeypatch) -> None:
    monkeypatch.setattr(debfetch, "recorded_versions", lambda: {
        "xen-hypervisor-4.17-amd64": "4.17.5+72-g01c8",
        "libxen-dev": "4.17.5+72-g01c8"})
    offers = {"xen-hypervisor-4.17-amd64": "4.17.7+13-g0aa3",
              "libxen-dev": "4.17.5+72-g01c8"}
    monkeypatch.setattr(debfetch, "candidate", lambda p: offers[p])

    def fake_run(cmd, **_):
        assert cmd[:2] == ["dpkg", "--compare-versions"]
        newer = cmd[2] > cmd[4]     # good enough for these two strings
        return subprocess.CompletedProcess(cmd, 0 if newer else 1, "", "")
    monkeypatch.setattr(debfetch, "run", fake_run)
    assert debfetch.newer_xen_build() == {
        "xen-hypervisor-4.17-amd64": "4.17.7+13-g0aa3"}


def test_no_candidate_means_nothing_newer(monkeypatch) -> None:
    monkeypatch.setattr(debfetch, "recorded_versions",
                        lambda: {"libxen-dev": "4.17.5+72"})
    monkeypatch.setattr(debfetch, "candidate", lambda p: "")
    assert debfetch.newer_xen_build() == {}



def test_fetch_package_records_only_when_asked(monkeypatch, tmp_path) -> None:
    noted = []
    monkeypatch.setattr(debfetch, "_apt_download",
                        lambda package, folder: folder / f"{package}.deb")
    monkeypatch.setattr(debfetch, "_deb_version", lambda deb: "1.2-3")
    monkeypatch.setattr(debfetch, "_extract", lambda deb, dest: None)
    monkeypatch.setattr(debfetch, "record_version",
                        lambda package, version: noted.append((package,
                                                               version)))
    assert debfetch.fetch_package("busybox-static", tmp_path,
                                  record=False) == "1.2-3"
    assert noted == []
    assert debfetch.fetch_package("libxen-dev", tmp_path) == "1.2-3"
    assert noted == [("libxen-dev", "1.2-3")]
