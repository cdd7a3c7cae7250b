"""Fetching Debian packages into the cache."""
from __future__ import annotations

from minios_lab.build import debfetch


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
