"""Transports: atomic uploads, resume, host keys, path safety, key-only login, concurrency.

The SFTP tests run against a real OpenSSH sshd on 127.0.0.1 (tests/fixtures/sshd.py) with our
own TCP proxy in between (tests/fixtures/tcpproxy.py) to stall and cut the connection.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import pytest

from fieldsync.errors import BadInput, HostKeyError, TransportError
from fieldsync.transport import open_transport
from fieldsync.transport import sftp as sftp_mod
from fieldsync.transport.inflight import InFlight
from fieldsync.transport.local import LocalTransport
from fieldsync.transport.paths import PART_SUFFIX, part_name
from fieldsync.transport.sftp import SFTPTransport, preferred_ciphers
from tests.fixtures.sshd import SSH_KEYGEN, keygen

PHOTO = PurePosixPath("3300001234_杭州某某机械有限公司/周期检查/计量装置/2026-11-25_1430/外观/IMG_0001.jpg")
WAIT = 60  # seconds a test waits for an event before failing (never a timing assertion)


def make_file(path: Path, size: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size) if seed == 0 else bytes([seed % 256]) * size)
    return path


def part_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".") and p.name.endswith(PART_SUFFIX)]


@pytest.fixture(params=["local", "sftp"])
def endpoint(request, tmp_path):
    """(transport, remote root folder on this machine) for each kind of transport."""
    remote = tmp_path / "server"
    remote.mkdir()
    if request.param == "local":
        transport = LocalTransport(remote)
    else:
        sshd = request.getfixturevalue("sshd")
        transport = SFTPTransport.from_config(sshd.config(remote))
    with transport:
        yield transport, remote


def sftp_via(sshd, proxy, remote: Path, **overrides) -> SFTPTransport:
    return SFTPTransport.from_config(sshd.config(remote, port=proxy.port, **overrides))


# ---------------------------------------------------------------------- both transports

def test_upload_lands_whole_under_its_final_name(endpoint, tmp_path):
    transport, remote = endpoint
    source = make_file(tmp_path / "photo.jpg", 3 * 1024 * 1024 + 17)
    seen_midway = []

    def progress(done: int, total: int) -> None:
        if 0 < done < total and not seen_midway:
            # Mid-upload: the final name must not exist yet; the hidden part must.
            final = remote / PHOTO
            seen_midway.append((final.exists(), [p.name for p in part_files(remote)]))

    transport.upload(source, PHOTO, progress=progress)
    assert seen_midway == [(False, [part_name("IMG_0001.jpg", transport.owner)])]
    assert (remote / PHOTO).read_bytes() == source.read_bytes()
    assert part_files(remote) == []


def test_resume_keeps_a_matching_partial(endpoint, tmp_path):
    transport, remote = endpoint
    source = make_file(tmp_path / "photo.jpg", 900_000)
    part = remote / PHOTO.parent / part_name("IMG_0001.jpg", transport.owner)
    part.parent.mkdir(parents=True)
    part.write_bytes(source.read_bytes()[:300_000])
    starts = []
    transport.upload(source, PHOTO, progress=lambda done, total: starts.append(done))
    assert starts[0] == 300_000
    assert (remote / PHOTO).read_bytes() == source.read_bytes()
    assert not part.exists()


def test_resume_refuses_a_partial_of_other_content(endpoint, tmp_path):
    transport, remote = endpoint
    source = make_file(tmp_path / "photo.jpg", 900_000)
    part = remote / PHOTO.parent / part_name("IMG_0001.jpg", transport.owner)
    part.parent.mkdir(parents=True)
    stale = bytearray(source.read_bytes()[:300_000])
    stale[-1] ^= 0xFF  # differs only where the partial stopped
    part.write_bytes(bytes(stale))
    starts = []
    transport.upload(source, PHOTO, progress=lambda done, total: starts.append(done))
    assert starts[0] == 0
    assert (remote / PHOTO).read_bytes() == source.read_bytes()


def test_replacing_a_file_is_atomic_and_empty_files_work(endpoint, tmp_path):
    transport, remote = endpoint
    rel = PurePosixPath("c/visit.yaml")
    transport.upload(make_file(tmp_path / "v1", 5000, seed=1), rel)
    transport.upload(make_file(tmp_path / "v2", 7000, seed=2), rel)
    assert (remote / rel).read_bytes() == b"\x02" * 7000
    transport.upload(make_file(tmp_path / "empty", 0), PurePosixPath("c/empty.txt"))
    assert (remote / "c/empty.txt").read_bytes() == b""


@pytest.mark.parametrize("bad", ["../outside.jpg", "/etc/passwd", "a/../../b.jpg", "a\\..\\b", "", "."])
def test_paths_leaving_the_root_are_refused(endpoint, tmp_path, bad):
    transport, remote = endpoint
    source = make_file(tmp_path / "photo.jpg", 1000)
    with pytest.raises(BadInput):
        transport.upload(source, bad)
    assert list(remote.iterdir()) == []
    assert not (tmp_path / "outside.jpg").exists()


def test_a_symlink_on_the_server_is_not_followed_out(endpoint, tmp_path):
    transport, remote = endpoint
    outside = tmp_path / "outside"
    outside.mkdir()
    (remote / "link").symlink_to(outside)
    source = make_file(tmp_path / "photo.jpg", 1000)
    with pytest.raises(BadInput):
        transport.upload(source, PurePosixPath("link/x.jpg"))
    with pytest.raises(BadInput):
        transport.makedirs(PurePosixPath("link/deeper"))
    with pytest.raises(BadInput):
        transport.makedirs(PurePosixPath("link"))
    with pytest.raises(BadInput):
        transport.download(PurePosixPath("link"), tmp_path / "fetched")
    assert list(outside.iterdir()) == []
    assert [e.rel for e in transport.walk()] == []  # the link itself is not listed either


def test_a_symlink_planted_as_temp_name_is_not_written_through(endpoint, tmp_path):
    transport, remote = endpoint
    victim = make_file(tmp_path / "victim.txt", 10, seed=7)
    (remote / "c").mkdir()
    (remote / "c" / part_name("a.jpg", transport.owner)).symlink_to(victim)
    source = make_file(tmp_path / "photo.jpg", 5000)
    transport.upload(source, PurePosixPath("c/a.jpg"))
    assert victim.read_bytes() == b"\x07" * 10
    assert (remote / "c/a.jpg").read_bytes() == source.read_bytes()


def test_a_dangling_symlink_planted_as_temp_name_creates_nothing_outside(endpoint, tmp_path):
    # The exclusive create of a fresh upload must not follow a symlink whose target does not
    # exist yet (O_CREAT alone would make the file there, outside the remote root).
    transport, remote = endpoint
    outside = tmp_path / "outside" / "planted.bin"
    outside.parent.mkdir()
    (remote / "c").mkdir()
    (remote / "c" / part_name("b.jpg", transport.owner)).symlink_to(outside)
    source = make_file(tmp_path / "photo.jpg", 5000)
    transport.upload(source, PurePosixPath("c/b.jpg"))
    assert not outside.exists()
    assert (remote / "c/b.jpg").read_bytes() == source.read_bytes()
    assert part_files(remote) == []


def test_concurrent_uploads_are_all_correct(endpoint, tmp_path):
    transport, remote = endpoint
    sources = [make_file(tmp_path / "src" / f"{i:03d}.jpg", 20_000 + i * 7919) for i in range(40)]
    rels = [PurePosixPath(f"客户/访问{i % 5}/外观/{p.name}") for i, p in enumerate(sources)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(transport.upload, sources, rels))
    for source, rel in zip(sources, rels):
        assert (remote / rel).read_bytes() == source.read_bytes()
    assert part_files(remote) == []
    # The same path from two threads: one wins whole, neither tears the other's temp file.
    a, b = make_file(tmp_path / "a", 400_000, seed=3), make_file(tmp_path / "b", 400_000, seed=4)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(transport.upload, [a, b], [PurePosixPath("same.jpg")] * 2))
    assert (remote / "same.jpg").read_bytes() in (a.read_bytes(), b.read_bytes())
    assert part_files(remote) == []


def test_a_server_allowing_fewer_channels_shares_them(sshd, tmp_path, caplog):
    from tests.fixtures.sshd import SshServer

    strict = SshServer(tmp_path / "strict-sshd", max_sessions=2)  # OpenSSH's default is 10
    strict.key_path, strict.authorized_keys = sshd.key_path, sshd.authorized_keys
    strict.start()
    try:
        remote = tmp_path / "server"
        remote.mkdir()
        sources = [make_file(tmp_path / "src" / f"{i}.jpg", 300_000) for i in range(12)]
        caplog.set_level("INFO", logger="fieldsync.transport.sftp")
        with SFTPTransport.from_config(strict.config(remote, parallel=6)) as transport, ThreadPoolExecutor(6) as pool:
            list(pool.map(lambda s: transport.upload(s, PurePosixPath("v") / s.name), sources))
        assert all((remote / "v" / s.name).read_bytes() == s.read_bytes() for s in sources)
        assert "allows 2 SFTP channels" in caplog.text  # the limit was hit, and lived with
    finally:
        strict.stop()


def test_stat_walk_download_rename_remove(endpoint, tmp_path):
    transport, remote = endpoint
    source = make_file(tmp_path / "photo.jpg", 70_000)
    transport.upload(source, PHOTO)
    entry = transport.stat(PHOTO)
    assert entry.size == 70_000 and not entry.is_dir
    assert transport.stat(PurePosixPath("nothing/here.jpg")) is None
    listed = {str(e.rel): e for e in transport.walk()}
    assert str(PHOTO) in listed and listed[str(PHOTO.parent)].is_dir
    back = tmp_path / "back" / "photo.jpg"
    transport.download(PHOTO, back)
    assert back.read_bytes() == source.read_bytes()
    visit = PHOTO.parents[1]
    renamed = visit.parent / "2026-11-25_1430_复查"
    transport.rename(visit, renamed)
    assert (remote / renamed / PHOTO.parent.name / PHOTO.name).read_bytes() == source.read_bytes()
    transport.remove(renamed / PHOTO.parent.name / PHOTO.name)
    assert not (remote / renamed / PHOTO.parent.name / PHOTO.name).exists()
    with pytest.raises(TransportError):
        transport.download(PurePosixPath("nothing/here.jpg"), tmp_path / "x")


def test_a_missing_remote_root_is_an_error_and_never_created(tmp_path, request):
    missing = tmp_path / "not-mounted"
    source = make_file(tmp_path / "photo.jpg", 100)
    with pytest.raises(TransportError, match="not"):
        LocalTransport(missing).upload(source, PHOTO)
    assert not missing.exists()
    sshd = request.getfixturevalue("sshd")
    with SFTPTransport.from_config(sshd.config(missing)) as transport, \
            pytest.raises(TransportError, match="does not exist"):
        transport.upload(source, PHOTO)
    assert not missing.exists()


def test_open_transport_follows_the_url(tree, sshd, remote_root):
    with open_transport(tree) as local:
        assert isinstance(local, LocalTransport)
        assert local.root == Path(tree.server.url.removeprefix("file://"))
    with open_transport(sshd.config(remote_root, base=tree)) as remote:
        assert isinstance(remote, SFTPTransport) and remote.port == sshd.port


# ---------------------------------------------------------------------- SFTP faults

def test_sftp_never_shows_a_partial_file_while_stalled(sshd, proxy, tmp_path):
    remote = tmp_path / "server"
    remote.mkdir()
    source = make_file(tmp_path / "photo.jpg", 2 * 1024 * 1024)
    transport = sftp_via(sshd, proxy, remote)
    transport.makedirs(PHOTO.parent)  # the stall must hit the file's data, not the handshake
    proxy.stall_after(600_000)
    errors = []
    worker = threading.Thread(target=lambda: _capture(errors, transport.upload, source, PHOTO))
    worker.start()
    assert proxy.stalled.wait(WAIT)
    # The upload hangs mid-file: the server has the hidden part, never the final name.
    assert not (remote / PHOTO).exists()
    parts = part_files(remote)
    assert [p.name for p in parts] == [part_name("IMG_0001.jpg", transport.owner)]
    assert parts[0].stat().st_size < source.stat().st_size
    proxy.resume()
    worker.join(WAIT)
    assert errors == []
    assert (remote / PHOTO).read_bytes() == source.read_bytes()
    assert part_files(remote) == []
    transport.close()


def test_sftp_resumes_after_a_cut(sshd, proxy, tmp_path):
    remote = tmp_path / "server"
    remote.mkdir()
    size = 3 * 1024 * 1024
    source = make_file(tmp_path / "photo.jpg", size)
    transport = sftp_via(sshd, proxy, remote)
    transport.makedirs(PHOTO.parent)
    proxy.cut_after(1_500_000)
    with pytest.raises(TransportError):
        transport.upload(source, PHOTO)
    assert not (remote / PHOTO).exists()
    part = remote / PHOTO.parent / part_name("IMG_0001.jpg", transport.owner)
    # The server goes on writing what reached it before the cut; wait until it is done.
    kept = wait_settled(part)
    assert 0 < kept < size
    before = proxy.upstream_bytes
    starts = []
    transport.upload(source, PHOTO, progress=lambda done, total: starts.append(done))  # redials
    assert starts[0] == kept
    assert proxy.upstream_bytes - before < size - kept + 200_000  # only the rest went up again
    assert (remote / PHOTO).read_bytes() == source.read_bytes()
    assert not part.exists()
    assert proxy.connections == 2
    transport.close()


def test_sftp_stall_times_out_as_a_transport_error(sshd, proxy, tmp_path):
    remote = tmp_path / "server"
    remote.mkdir()
    source = make_file(tmp_path / "photo.jpg", 2 * 1024 * 1024)
    transport = sftp_via(sshd, proxy, remote, timeout_seconds=1.0)
    transport.makedirs(PHOTO.parent)
    proxy.stall_after(300_000)
    with pytest.raises(TransportError, match="no answer"):
        transport.upload(source, PHOTO)
    proxy.resume()
    transport.upload(source, PHOTO)  # a fresh connection finishes it
    assert (remote / PHOTO).read_bytes() == source.read_bytes()
    transport.close()


def test_sftp_server_down_and_back(sshd, proxy, tmp_path):
    remote = tmp_path / "server"
    remote.mkdir()
    source = make_file(tmp_path / "photo.jpg", 50_000)
    transport = sftp_via(sshd, proxy, remote)
    proxy.refuse = True
    with pytest.raises(TransportError):
        transport.upload(source, PHOTO)
    proxy.refuse = False
    transport.upload(source, PHOTO)
    sshd.restart()  # the live connection dies with the server; the next call redials
    transport.upload(source, PurePosixPath("again.jpg"))
    assert (remote / "again.jpg").read_bytes() == source.read_bytes()
    transport.close()


def test_sftp_unreachable_port_is_a_transport_error(sshd, tmp_path):
    from tests.fixtures.sshd import free_port

    port = free_port()
    transport = SFTPTransport.from_config(sshd.config(tmp_path, port=port))
    with pytest.raises(TransportError, match="cannot reach"):
        transport.stat(PurePosixPath("x"))


# ---------------------------------------------------------------------- host keys and login

def test_unknown_host_is_refused_before_login(sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    logins_before = sshd.log_text().count("userauth-request")
    transport = SFTPTransport.from_config(sshd.config(tmp_path, known_hosts=empty))
    with pytest.raises(HostKeyError) as caught:
        transport.upload(make_file(tmp_path / "p.jpg", 100), PurePosixPath("p.jpg"))
    message = str(caught.value)
    assert sshd.host_fingerprint in message and "fieldsync trust-host" in message
    assert caught.value.fingerprint == sshd.host_fingerprint and caught.value.changed is False
    assert isinstance(caught.value, TransportError)
    assert sshd.log_text().count("userauth-request") == logins_before  # our key was never offered
    assert empty.read_text() == ""  # and nothing was added to known_hosts


def test_changed_host_key_is_refused_with_both_fingerprints(sshd, tmp_path):
    other_pub = keygen(tmp_path / "impostor")
    pinned = sshd.write_known_hosts(tmp_path / "known_hosts", pub=other_pub)
    other_fp = subprocess.run([SSH_KEYGEN, "-lf", str(tmp_path / "impostor.pub")], capture_output=True,
                              text=True, check=True).stdout.split()[1]
    transport = SFTPTransport.from_config(sshd.config(tmp_path, known_hosts=pinned))
    with pytest.raises(HostKeyError) as caught:
        transport.stat(PurePosixPath("x"))
    message = str(caught.value)
    assert "CHANGED" in message and sshd.host_fingerprint in message and other_fp in message
    assert "fieldsync trust-host" in message and caught.value.changed is True


def test_login_uses_the_key_only_never_a_password(sshd, tmp_path):
    stranger = tmp_path / "id_stranger"
    keygen(stranger)
    log_start = len(sshd.log_text())
    transport = SFTPTransport.from_config(sshd.config(tmp_path, key_file=stranger))
    transport.use_agent = False
    with pytest.raises(TransportError, match="refused the key"):
        transport.stat(PurePosixPath("x"))
    attempts = [line for line in sshd.log_text()[log_start:].splitlines() if "userauth-request" in line]
    assert attempts and all("method publickey" in line or "method none" in line for line in attempts)
    assert not any("password" in line or "keyboard-interactive" in line for line in attempts)


def test_aes_gcm_is_negotiated_with_openssh(sshd, tmp_path):
    with SFTPTransport.from_config(sshd.config(tmp_path)) as transport:
        assert transport.stat(PurePosixPath("x")) is None
        assert transport._ssh.remote_cipher == "aes128-gcm@openssh.com"
        assert transport._ssh.local_cipher == "aes128-gcm@openssh.com"


def test_cipher_preference_keeps_every_offered_cipher():
    offered = ("aes128-ctr", "aes256-ctr", "aes256-gcm@openssh.com", "aes128-gcm@openssh.com")
    assert preferred_ciphers(offered) == ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
                                          "aes128-ctr", "aes256-ctr")
    assert preferred_ciphers(("aes128-ctr",)) == ("aes128-ctr",)


def test_password_in_config_is_refused(tmp_path):
    from fieldsync import config as config_mod
    from fieldsync.errors import ConfigError

    with pytest.raises(ConfigError, match="no password"):
        config_mod.from_mapping({"root": str(tmp_path), "server": {"url": "sftp://u@h/srv", "password": "x"}}, None)


# ---------------------------------------------------------------------- trust-host

@pytest.fixture
def untrusted(sftp_tree, sshd, tmp_path):
    """sftp_tree whose known_hosts holds another server's line only (kept through pinning)."""
    known = Path(sftp_tree.server.known_hosts)
    known.write_text("# ops pins\nfiles.example ssh-ed25519 " + sshd.host_pub.split()[1] + "\n")
    return sftp_tree


def test_trust_host_pins_only_when_confirmed(untrusted, sshd, invoke):
    known = Path(untrusted.server.known_hosts)
    before = known.read_text()
    declined = invoke("trust-host", input="n\n")
    assert declined.exit_code == 1
    assert sshd.host_fingerprint in declined.output and "ssh-ed25519" in declined.output
    assert known.read_text() == before
    with pytest.raises(HostKeyError):
        SFTPTransport.from_config(untrusted).stat(PurePosixPath("x"))

    accepted = invoke("trust-host", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    text = known.read_text()
    assert text.startswith(before)  # other hosts and comments untouched
    found = subprocess.run([SSH_KEYGEN, "-F", f"[127.0.0.1]:{sshd.port}", "-f", str(known)],
                           capture_output=True, text=True)
    assert found.returncode == 0 and sshd.host_pub.split()[1] in found.stdout  # OpenSSH reads it
    with SFTPTransport.from_config(untrusted) as transport:
        assert transport.stat(PurePosixPath("x")) is None
    again = invoke("trust-host")
    assert again.exit_code == 0 and "already pinned" in again.output


def test_trust_host_yes_needs_the_matching_fingerprint(untrusted, sshd, invoke):
    known = Path(untrusted.server.known_hosts)
    before = known.read_text()
    assert invoke("trust-host", "--yes").exit_code == 2
    wrong = invoke("trust-host", "--yes", "--fingerprint", "SHA256:" + "A" * 43)
    assert wrong.exit_code == 2 and known.read_text() == before
    right = invoke("trust-host", "--yes", "--hashed", "--fingerprint", sshd.host_fingerprint)
    assert right.exit_code == 0, right.output
    last = known.read_text().splitlines()[-1]
    assert last.startswith("|1|") and str(sshd.port) not in last  # hashed host name
    with SFTPTransport.from_config(untrusted) as transport:
        assert transport.stat(PurePosixPath("x")) is None


def test_trust_host_replaces_a_changed_key_after_warning(untrusted, sshd, invoke, tmp_path):
    known = Path(untrusted.server.known_hosts)
    other = keygen(tmp_path / "old_server_key")
    known.write_text(known.read_text() + sshd.known_hosts_line(pub=other) + "\n")
    result = invoke("trust-host", input="y\n")
    assert result.exit_code == 0
    assert "CHANGED" in result.output
    text = known.read_text()
    assert other.split()[1] not in text and text.count(f"[127.0.0.1]:{sshd.port}") == 1
    assert "files.example" in text


def wait_settled(path: Path) -> int:
    """The size of `path` once it exists and stopped growing (waits at most WAIT seconds)."""
    deadline = time.monotonic() + WAIT
    last, same = -1, 0
    while time.monotonic() < deadline and same < 5:
        size = path.stat().st_size if path.exists() else -1
        same = same + 1 if size == last and size > 0 else 0
        last = size
        time.sleep(0.1)
    return last


def _capture(errors: list, fn, *args) -> None:
    try:
        fn(*args)
    except Exception as exc:  # reported by the test's assertion, not lost in the thread
        errors.append(exc)


@pytest.mark.parametrize("kind", ["rsa", "ecdsa"])
def test_rsa_and_ecdsa_keys_log_in(sshd, tmp_path, kind):
    key = tmp_path / f"id_{kind}"
    pub = keygen(key, kind)
    with open(sshd.authorized_keys, "a") as authorized:
        authorized.write(pub + "\n")
    remote = tmp_path / "server"
    remote.mkdir()
    with SFTPTransport.from_config(sshd.config(remote, key_file=key)) as transport:
        transport.use_agent = False
        transport.upload(make_file(tmp_path / "p.jpg", 1000), PurePosixPath("p.jpg"))
    assert (remote / "p.jpg").stat().st_size == 1000


def test_pinning_keeps_other_lines_and_replaces_this_hosts_entries(tmp_path):
    import base64

    import paramiko

    from fieldsync.transport import hostkeys

    pub = keygen(tmp_path / "k").split()
    new = keygen(tmp_path / "n").split()
    known = tmp_path / "ssh" / "known_hosts"
    known.parent.mkdir()
    kept = [f"@cert-authority *.example {pub[0]} {pub[1]}", "# a comment", "a damaged line",
            f"other.example {pub[0]} {pub[1]}"]
    known.write_text("\n".join(kept + [f"{paramiko.HostKeys.hash_host('[10.0.0.5]:2222')} {pub[0]} {pub[1]}"]) + "\n")
    assert hostkeys.pinned(known, "10.0.0.5", 2222)  # the hashed entry is found
    key = paramiko.Ed25519Key(data=base64.b64decode(new[1]))
    with pytest.raises(HostKeyError, match="CHANGED"):
        hostkeys.check(known, "10.0.0.5", 2222, key)
    hostkeys.pin(known, "10.0.0.5", 2222, key)
    lines = known.read_text().splitlines()
    assert lines == kept + [f"[10.0.0.5]:2222 {new[0]} {new[1]}"]
    hostkeys.check(known, "10.0.0.5", 2222, key)  # now accepted
    hostkeys.pin(known, "files.example", 22, key)
    assert known.read_text().splitlines()[-1] == f"files.example {new[0]} {new[1]}"  # port 22: bare name
    assert known.stat().st_mode & 0o777 == 0o600


def test_a_folder_removed_on_the_server_is_made_again(endpoint, tmp_path):
    import shutil

    transport, remote = endpoint
    source = make_file(tmp_path / "photo.jpg", 5000)
    transport.upload(source, PHOTO)
    shutil.rmtree(remote / PHOTO.parts[0])  # an admin tidies up behind our back
    transport.upload(source, PHOTO)
    assert (remote / PHOTO).read_bytes() == source.read_bytes()


# ---------------------------------------------------------------------- prepared ahead (sftp)

@pytest.fixture
def sftp_endpoint(sshd, tmp_path):
    remote = tmp_path / "server"
    remote.mkdir()
    with SFTPTransport.from_config(sshd.config(remote, parallel=4)) as transport:
        transport.host_key()  # connected, as in a pass
        yield transport, remote


def test_write_ahead_never_makes_a_connection(sshd, tmp_path):
    """Written ahead for a pass that has lost its connection, a temp file would be left."""
    remote = tmp_path / "server"
    remote.mkdir()
    with SFTPTransport.from_config(sshd.config(remote)) as transport:
        assert not transport.write_ahead(make_file(tmp_path / "m.json", 100), PurePosixPath("v/manifest.json"))
        transport.host_key()
        transport.close()  # the pass lost it
        assert not transport.write_ahead(make_file(tmp_path / "m.json", 100), PurePosixPath("v/manifest.json"))
    assert list(remote.iterdir()) == []


def test_an_upload_written_ahead_is_only_its_rename(sftp_endpoint, tmp_path):
    transport, remote = sftp_endpoint
    manifest = PHOTO.parent.parent / "manifest.json"
    source = make_file(tmp_path / "manifest.json", 70_000)
    assert transport.write_ahead(source, manifest)
    [part] = part_files(remote)
    assert part.read_bytes() == source.read_bytes() and not (remote / manifest).exists()  # not visible yet
    written = part.stat().st_ino
    transport.upload(source, manifest)
    assert (remote / manifest).read_bytes() == source.read_bytes()
    assert (remote / manifest).stat().st_ino == written  # renamed into place, not sent again
    assert part_files(remote) == []


def test_a_file_changed_after_it_was_written_ahead_goes_up_as_it_is_now(sftp_endpoint, tmp_path):
    transport, remote = sftp_endpoint
    rel = PurePosixPath("客户/visit/manifest.json")
    source = make_file(tmp_path / "manifest.json", 5_000, seed=1)
    assert transport.write_ahead(source, rel)
    source.write_bytes(b"\x02" * 5_000)  # the same size, other content (a later seal)
    os.utime(source, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    transport.upload(source, rel)
    assert (remote / rel).read_bytes() == b"\x02" * 5_000
    assert part_files(remote) == []


def test_written_ahead_holds_at_most_half_the_channels_and_a_new_pass_releases_them(sftp_endpoint, tmp_path):
    transport, remote = sftp_endpoint  # server.parallel 4
    sources = [make_file(tmp_path / f"f{i}", 1_000 + i) for i in range(3)]
    done = [transport.write_ahead(source, PurePosixPath("v") / source.name) for source in sources]
    assert done == [True, True, False]  # the uploads they wait for keep two channels
    photos = [make_file(tmp_path / "p" / f"IMG_{i}.jpg", 200_000) for i in range(6)]
    with ThreadPoolExecutor(4) as pool:  # still go up meanwhile
        list(pool.map(lambda p: transport.upload(p, PurePosixPath("v/外观") / p.name), photos))
    assert all((remote / "v/外观" / p.name).read_bytes() == p.read_bytes() for p in photos)
    assert len(part_files(remote)) == 2
    transport.begin_pass()  # the pass that wrote them ahead failed before their turn
    assert part_files(remote) == [] and not (remote / "v" / "f0").exists()
    assert [transport.write_ahead(source, PurePosixPath("v") / source.name) for source in sources[:2]] == [True, True]


def test_a_symlink_planted_below_a_folder_we_just_made_is_refused(sftp_endpoint, tmp_path):
    """Below a folder made in this pass nothing is looked at before its mkdir: what another
    client put there meanwhile is still found (the mkdir fails, the lstat then sees it)."""
    transport, remote = sftp_endpoint
    outside = tmp_path / "outside"
    outside.mkdir()
    source = make_file(tmp_path / "photo.jpg", 1_000)
    transport.upload(source, PurePosixPath("v/a.jpg"))  # makes v
    (remote / "v" / "外观").symlink_to(outside)
    with pytest.raises(BadInput):
        transport.upload(source, PurePosixPath("v/外观/x.jpg"))
    assert list(outside.iterdir()) == []


# ---------------------------------------------------------------------- the connection's bytes in flight

def test_an_allowance_of_bytes_in_flight_holds_and_comes_back_to_writers_with_none_of_their_own():
    """Writers that have nothing in flight wait for the others' answers; nobody waits forever
    and the allowance is never exceeded."""
    allowance = InFlight(100)
    peak = []

    def writer(requests: int) -> None:
        mine: list[int] = []

        def answer_own() -> int:
            return mine.pop(0) if mine else 0

        for _ in range(requests):
            allowance.take(30, answer_own)
            mine.append(30)
            with allowance._freed:
                peak.append(allowance._used)
        allowance.give(sum(mine))

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(writer, [40] * 6))
    assert max(peak) <= 100 and allowance._used == 0


def test_uploads_keep_within_the_connections_bytes_in_flight(sshd, tmp_path, monkeypatch):
    """A rename or a mkdir waits behind at most this many bytes of other uploads' data."""
    allowances: list[InFlight] = []

    class Watched(InFlight):
        def __init__(self, limit: int):
            super().__init__(limit)
            self.peak = 0
            allowances.append(self)

        def take(self, nbytes, answer_own):
            super().take(nbytes, answer_own)
            with self._freed:
                self.peak = max(self.peak, self._used)

    monkeypatch.setattr(sftp_mod, "InFlight", Watched)
    monkeypatch.setattr(sftp_mod, "IN_FLIGHT", 4 * sftp_mod.WRITE_REQUEST)
    remote = tmp_path / "server"
    remote.mkdir()
    sources = [make_file(tmp_path / "src" / f"IMG_{i}.jpg", 300_000 + i) for i in range(6)]
    with SFTPTransport.from_config(sshd.config(remote, parallel=4)) as transport, ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda s: transport.upload(s, PurePosixPath("v/外观") / s.name), sources))
    assert all((remote / "v/外观" / s.name).read_bytes() == s.read_bytes() for s in sources)
    assert part_files(remote) == []
    used = [a for a in allowances if a.peak]
    assert used, "no upload went through the allowance"
    assert all(sftp_mod.WRITE_REQUEST < a.peak <= 4 * sftp_mod.WRITE_REQUEST for a in used)  # pipelined, capped
    assert all(a._used == 0 for a in allowances)  # every byte's answer was read


def test_the_channel_pool_opens_with_the_connection(sftp_endpoint):
    """A pass's first uploads and folders find their channels open: they were opened beside
    the first one, not one at a time on the uploads' path."""
    transport, _remote = sftp_endpoint  # connected, server.parallel 4
    deadline = time.monotonic() + WAIT
    while len(transport._idle) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(transport._idle) == 4 and transport._busy == 0


def test_a_limit_learned_after_uploads_were_written_ahead_leaves_the_others_a_channel(sftp_endpoint, tmp_path):
    """Written ahead, uploads hold at most half the channels; if the server's limit turns out
    smaller afterwards (a refused channel lowers the cap), they must not keep every channel
    while the upload they wait for waits for one."""
    transport, remote = sftp_endpoint  # server.parallel 4
    ahead = [make_file(tmp_path / f"m{i}.json", 1_000 + i) for i in range(2)]
    assert all(transport.write_ahead(source, PurePosixPath("v") / source.name) for source in ahead)
    with transport._lock:  # the other channels gone, and a limit of two learned meanwhile
        for idle in transport._idle:
            idle.close()
        transport._idle.clear()
        transport._cap = 2
    photo = make_file(tmp_path / "IMG_1.jpg", 100_000)
    upload = threading.Thread(target=transport.upload, args=(photo, PurePosixPath("v/外观/IMG_1.jpg")), daemon=True)
    upload.start()
    upload.join(WAIT)
    assert not upload.is_alive(), "the upload never got a channel"
    assert (remote / "v/外观/IMG_1.jpg").read_bytes() == photo.read_bytes()
    for source in ahead:  # one was released (its temp file resumed: only the rename left), one is as written
        transport.upload(source, PurePosixPath("v") / source.name)
        assert (remote / "v" / source.name).read_bytes() == source.read_bytes()
    assert part_files(remote) == []
