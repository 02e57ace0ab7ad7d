"""End to end: the documented deployment on loopback, then tablet A attacks everything it should not reach.

Provisions what docs/deployment.md describes, with the guide's own config text read from
docs/deploy/ (only paths, the port and the group renamed): a share under /srv, two tablet accounts
made with useradd, each chrooted by sshd's internal-sftp into SHARE/tablets/ACCOUNT, nginx with the
guide's server block (TLS, basic auth, disable_symlinks, tablet files never served as HTML).
Two real tablet trees sync with the real engine under their own accounts' keys; then, over SFTP
as tablet A, every way at B's files, the admins' pages and the published master data must fail;
`server index --tablets` must stay inside the share; nginx must serve every page and thumbnail,
refuse planted links and hand planted HTML out as a download.

Who did what: rsyslog listens in every chroot as the guide sets it up, and the log must name A for
A's upload and for each refused attempt at B's files; logrotate rotates it with the guide's snippet.

Needs root (useradd, chroot), OpenSSH, nginx, rsyslog and logrotate: skipped without them locally, failed under CI=true.
"""

# Every command block of docs/deployment.md, in order, and what this file does with it. "Run":
# run_guide_block runs the block's text with sh -eu, renaming only paths, the port, the account
# and group names (tagged per run) and a few flags said below; systemctl, journalctl and apt-get
# commands are echoed instead (no systemd as PID 1 in the test container; ./run installs the
# packages), which is why the daemons are started directly with the same files.
#   §0  apt-get / git clone / venv / pip install   run: apt-get echoed, git clone skipped (this
#                                                  checkout is the source), Debian's /usr/bin/python3
#   §0  cp units, install scripts                  run (into the work folder)
#   §1  lvcreate, mkfs, fstab, mount, quotaon      NOT run: needs a block device, LVM and mount
#   §1  groupadd, useradd, install -d              run
#   §2  sed Subsystem, drop-in, sshd -t            run on a copy of Debian's sshd_config (shown to
#                                                  fail without the sed); reload echoed
#   §2  rsyslog + logrotate files, rsyslogd -N1    run, -N1 on a copy of Debian's rsyslog.conf
#   §2  add_tablet (both tablets)                  run; setquota echoed (no quota filesystem)
#   §2  logpath / zgrep "which account"            run on the test's log
#   §3  index by hand (runuser)                    run as the index account
#   §3  enable index / deep timers, journalctl     NOT run (PID 1); `systemctl --root enable` of
#                                                  every timer the guide enables, units verified
#   §3  verify by hand (runuser)                   run as the index account; list-timers echoed
#   §3  verify/evidence with keyring, receipts     NOT run here: tests/test_receipts.py covers them
#   §4  self-signed certificate                    run; nginx serves with it
#   §4  htpasswd, site, default site, nginx -t     run on a copy of Debian's /etc/nginx, with
#                                                  `htpasswd -i` (no terminal); reload echoed
#   §4  certbot                                    NOT run: needs the network and public DNS; its
#                                                  --deploy-hook is run on a lineage-like folder
#   §5  office: init, import, publish, publish-master  run (office account by runuser)
#   §5  report by hand (runuser)                   run as the index account
#   §5  enable report timer                        NOT run (PID 1); systemctl --root enable
#   §6  Windows task, systemd --user, Termux, tablet ssh-keygen   NOT run: tablet side (the tablets
#                                                  here make their keys with ssh-keygen); the
#                                                  user unit (ini block) passes systemd-analyze --user verify
#   §7  rsync backup by hand                       run; timer echoed
#   §7  borg: this machine's key / vault account / init, export, backup, list, unit sed
#                                                  run, the loopback sshd plays the vault; the
#                                                  sed-ed unit passes systemd-analyze verify
#   §7  restore from rsync / from borg             run, archive and snapshot names as made
#   §7  "either way" (publish-master, verify, index --full)   run per account
#   §7  restore drill                              run (logger -> stderr: no syslog socket), clean
#                                                  and with a damaged photo, which it reports
#   §8  journalctl / systemctl --failed            NOT run (PID 1)
#   §8  enable health timer, run health            NOT run as a block (the share's disk here may
#                                                  be over 85%); the script's alarms are tested
#   §8  nftables install, include, nft -c          run on a copy of Debian's nftables.conf;
#                                                  enable/restart echoed, `nft list` not run (the
#                                                  rules are never loaded into the host's kernel)
#   §9  revoke (rm key, pkill)                     run; the tablet's next pass is refused
#   §9  offboard_tablet                            run; systemctl lines echoed

from __future__ import annotations

import base64
import dataclasses
import grp
import io
import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import paramiko
import pytest

from fieldsync import config as config_mod
from fieldsync.evidence import manifest
from fieldsync.masterdata import importer
from fieldsync.masterdata import publish as masterdata
from fieldsync.masterdata.catalog import IndexedStore
from fieldsync.server import build
from fieldsync.server.site import SITE, THUMBS
from fieldsync.sync import engine
from fieldsync.tree.folders import init_root
from tests.conftest import SAMPLE_CSV, require_real_part
from tests.fixtures import syncing
from tests.fixtures.evidence import empty_visit, file_photos, make_jpeg
from tests.fixtures.sshd import SSHD, free_port, keygen, sshd_available

pytestmark = pytest.mark.slow

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
LOGROTATE = shutil.which("logrotate") or "/usr/sbin/logrotate"
DEPLOY = Path(__file__).resolve().parents[1] / "docs" / "deploy"
ADMIN, ADMIN_PASSWORD = "admin-li", "e2e-" + secrets.token_hex(8)


GUIDE = DEPLOY.parent / "deployment.md"
# Commands of the guide's blocks that cannot run here: no systemd as PID 1 (systemctl, journalctl),
# apt-get (the test's packages are installed by ./run; the mirror may be unreachable). Each, at
# the start of a line or after "&&", is replaced by an echo naming it, in the block's output.
NOT_HERE = re.compile(r"(^\s*|&& )((?:systemctl|journalctl|apt-get) [^&;#\n]*)")


def renamed(text: str, renames: dict[str, str]) -> str:
    """`text` with every key of `renames` replaced, in one pass (longest key first), so that a
    path put in by one rename is never renamed again by another."""
    if not renames:
        return text
    pattern = re.compile("|".join(re.escape(old) for old in sorted(renames, key=len, reverse=True)))
    return pattern.sub(lambda match: renames[match.group(0)], text)


def guide_text(name: str, **renames: str) -> str:
    """A config file of the guide, with the guide's paths renamed to this test's."""
    return renamed((DEPLOY / name).read_text(encoding="utf-8"), renames)


def guide_block(marker: str) -> str:
    """The one ```sh block of docs/deployment.md that holds `marker`, as written there."""
    blocks = re.findall(r"^```sh\n(.*?)^```$", GUIDE.read_text("utf-8"), flags=re.S | re.M)
    found = [block for block in blocks if marker in block]
    if len(found) > 1:  # a one-line block that other blocks repeat: the marker is all of it
        found = [block for block in found if block == marker]
    assert len(found) == 1, f"{len(found)} blocks of {GUIDE.name} hold {marker!r}"
    return found[0]


def run_guide_block(marker: str, renames: dict[str, str], env: dict | None = None,
                    stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run the block of the guide that holds `marker` (see run_guide_text)."""
    return run_guide_text(guide_block(marker), renames, env, stdin, f"the guide's block with {marker!r}")


def run_guide_text(text: str, renames: dict[str, str], env: dict | None = None, stdin: str | None = None,
                   what: str = "the guide's commands") -> subprocess.CompletedProcess:
    """Run commands of the guide with `sh -eu`, literally but for `renames` (paths, port, names)
    and the commands of NOT_HERE. Returns the finished process; fails on the first failing command."""
    lines = []
    for line in re.sub(r"\\\n\s*", " ", renamed(text, renames)).splitlines():  # continued lines joined
        if NOT_HERE.search(line):
            line = NOT_HERE.sub(lambda m: f"{m.group(1)}echo {shlex.quote('not run here: ' + m.group(2).strip())} ",
                                line)
        lines.append(line)
    done = subprocess.run(["sh", "-eu", "-c", "\n".join(lines)], capture_output=True, text=True, env=env,
                          check=False, **({"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}))
    if done.returncode:
        raise RuntimeError(f"{what} exited with {done.returncode}:\n" + "\n".join(lines)
                           + f"\n--- stdout:\n{done.stdout}\n--- stderr:\n{done.stderr}")
    return done


def run(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env=env)
    if done.returncode:
        raise RuntimeError(f"{' '.join(map(str, args))} exited with {done.returncode}: {done.stderr}")
    return done


def wait_for_port(port: int, process: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: "
                               f"{log.read_text(errors='replace')[-2000:] if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer on 127.0.0.1:{port}")


def stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclasses.dataclass
class Deployment:
    share: Path
    work: Path
    group: str
    accounts: list[str]
    ssh_port: int = 0
    http_port: int = 0
    host_pub: str = ""
    fieldsync: Path = Path("/opt/fieldsync/venv/bin/fieldsync")  # as section 0 installed it
    others: list[str] = dataclasses.field(default_factory=list)  # more accounts to remove

    def renames(self) -> dict[str, str]:
        """The guide's paths and names, as this test's deployment has them (used for every block
        run and every file installed from docs/deploy/)."""
        return {
            "/opt/fieldsync/src/docs/deploy/": f"{DEPLOY}/",
            "/opt/fieldsync/venv/bin/fieldsync": str(self.fieldsync),
            "runuser -u fieldsync-index": f"runuser -u fsi{self.group[3:]}",
            "runuser -u fieldsync-office": f"runuser -u fso{self.group[3:]}",
            "/usr/local/sbin/": f"{self.work}/sbin/",
            "/etc/systemd/system/": f"{self.work}/systemd/",
            "/srv/fieldsync": str(self.share),
            " srv/fieldsync/": f" {str(self.share).lstrip('/')}/",  # a path inside a borg archive
            "/backup/fieldsync": str(self.work / "backup"),
            "/etc/fieldsync": str(self.work / "etc-fieldsync"),
            "/etc/ssh/fieldsync-keys": str(self.work / "keys"),
            "/var/tmp/": f"{self.work}/var-tmp/",
            "/root/": f"{self.work}/root/",
            "insp-zhangsan": self.accounts[0],
        }

    @property
    def sftp_log(self) -> Path:
        return self.work / "log" / "sftp.log"

    def key(self, account: str) -> Path:
        return self.work / "client-keys" / account

    def known_hosts(self) -> Path:
        path = self.work / "known_hosts"
        kind, blob = self.host_pub.split()[:2]
        path.write_text(f"[127.0.0.1]:{self.ssh_port} {kind} {blob}\n")
        return path

    def tree(self, account: str) -> Path:
        return self.share / "tablets" / account / "fieldsync"

    def sftp(self, account: str) -> tuple[paramiko.SSHClient, paramiko.SFTPClient]:
        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts()))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect("127.0.0.1", self.ssh_port, username=account, key_filename=str(self.key(account)),
                       look_for_keys=False, allow_agent=False, timeout=10)
        return client, client.open_sftp()

    def get(self, path: str, auth: bool = True):
        """(status, headers, body) of an HTTPS GET through nginx; redirects are not followed."""
        request = urllib.request.Request(f"https://127.0.0.1:{self.http_port}{path}")
        if auth:
            token = base64.b64encode(f"{ADMIN}:{ADMIN_PASSWORD}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        context = ssl.create_default_context(cafile=str(self.work / "tls" / "fullchain.pem"))
        context.check_hostname = False

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), NoRedirect)
        try:
            with opener.open(request, timeout=10) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()


def provision(d: Deployment) -> None:
    """Sections 1, 5 (the back office's first publish), 2 (the rsyslog files) and add_tablet for
    each tablet, their blocks run as the guide writes them. Renamed besides the paths: the group
    and the service accounts get this run's names; rsyslogd -N1 checks the guide's file inside a
    copy of Debian's own rsyslog.conf; setquota is left out (no quotas on this filesystem)."""
    tag = d.group[3:]
    d.others += [f"fsi{tag}", f"fso{tag}"]
    names = {**d.renames(), "fieldsync-tablets": d.group, "fieldsync-index": f"fsi{tag}",
             "fieldsync-office": f"fso{tag}", "/var/lib/fieldsync-office": str(d.work / "office"),
             "/path/to/customers.csv": str(d.work / "customers.csv")}
    run_guide_block("groupadd --system fieldsync-tablets", names)
    assert (d.share / ".fieldsync").stat().st_uid == pwd.getpwnam(f"fsi{tag}").pw_uid

    (d.work / "customers.csv").write_text(SAMPLE_CSV, encoding="utf-8")
    office = run_guide_block("--inspector office --device office", names)
    assert "installed in 0 tablet trees" in office.stdout, office.stdout

    etc = d.work / "etc-rsyslog"
    (etc / "rsyslog.d").mkdir(parents=True)
    (etc / "rsyslog.conf").write_text(Path("/etc/rsyslog.conf").read_text().replace("/etc/rsyslog.d/", f"{etc}/rsyslog.d/"))
    logs = {**names, "/var/log/fieldsync/sftp.log": str(d.sftp_log), "/etc/rsyslog.d/fieldsync-tablets": str(d.work / "rsyslog-tablets")}
    for name in ("rsyslog-fieldsync.conf", "rsyslog-fieldsync-tablet.conf"):  # the files of docs/deploy/, renamed
        (d.work / name).write_text(guide_text(name, **logs))
        names[f"/opt/fieldsync/src/docs/deploy/{name}"] = str(d.work / name)
    names.update({
        "/etc/rsyslog.d/fieldsync-tablets": str(d.work / "rsyslog-tablets"),
        "/etc/rsyslog.d/fieldsync.conf": str(etc / "rsyslog.d" / "fieldsync.conf"),
        "/etc/logrotate.d/fieldsync-sftp": str(d.work / "logrotate-fieldsync-sftp"),
        "rsyslogd -N1 &&": f"{RSYSLOGD} -N1 -f {etc / 'rsyslog.conf'} &&",
        "setquota -u": "echo not run here, no quotas on this filesystem: setquota -u",
        "add_tablet insp-zhangsan ./keys/zhangsan-tablet07.pub": "\n".join(
            f"add_tablet {account} {d.work / 'client-keys' / account}.pub" for account in d.accounts)})
    run_guide_block("rsyslogd -N1", names)
    for account in d.accounts:
        keygen(d.key(account))
    added = run_guide_block("add_tablet() {", names)
    assert "installed in 2 tablet trees" in added.stdout, added.stdout
    for account in d.accounts:
        chroot, tree = d.share / "tablets" / account, d.tree(account)
        assert (chroot.stat().st_uid, chroot.stat().st_mode & 0o777) == (0, 0o755)
        assert (tree.stat().st_uid, tree.stat().st_mode & 0o777) == (pwd.getpwnam(account).pw_uid, 0o755)
        assert pwd.getpwnam(account).pw_shell == "/usr/sbin/nologin"
        assert (d.work / "keys" / account).read_text() == Path(f"{d.key(account)}.pub").read_text()


def start_rsyslog(d: Deployment) -> subprocess.Popen:
    """The guide's rsyslog files as section 2 and add_tablet installed them: a log socket in every
    chroot, each line filed under its account. Debian's rsyslog.conf would load imuxsock and take
    the host's /dev/log; this rsyslogd reads only the guide's files and leaves /dev/log alone."""
    config = d.work / "rsyslog.conf"
    config.write_text('module(load="imuxsock" SysSock.Use="off")\n'
                      + (d.work / "etc-rsyslog" / "rsyslog.d" / "fieldsync.conf").read_text())
    process = subprocess.Popen([RSYSLOGD, "-n", "-f", str(config), "-i", str(d.work / "rsyslogd.pid")],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not all((d.share / "tablets" / account / "dev" / "log").exists() for account in d.accounts):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("rsyslogd made no log socket in the chroots")
        time.sleep(0.05)
    return process


def sftp_log_lines(d: Deployment, *wanted: str) -> list[str]:
    """The SFTP log's lines, once one line holds each of `wanted` (rsyslog writes in batches)."""
    deadline = time.monotonic() + 10
    while True:
        lines = d.sftp_log.read_text("utf-8").splitlines() if d.sftp_log.exists() else []
        if all(any(w in line for line in lines) for w in wanted) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def as_logged(path: str) -> str:
    """A path as sshd writes it to the log: bytes outside ASCII as \\ooo (docs/deployment.md)."""
    return "".join(chr(byte) if byte < 0x80 else f"\\{byte:03o}" for byte in path.encode())


def start_sshd(d: Deployment) -> subprocess.Popen:
    """The guide's section 2, first block, run on a copy of Debian's own /etc/ssh/sshd_config: as
    installed, it and the guide's drop-in fail `sshd -t` (two "Subsystem sftp"); after the block's
    sed, they pass. This test's own settings (port, host key, no PAM) come in a drop-in read first."""
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    d.ssh_port = free_port()
    host_key = d.work / "ssh_host_ed25519_key"
    d.host_pub = keygen(host_key)
    etc = d.work / "etc-ssh"
    (etc / "sshd_config.d").mkdir(parents=True)
    renames = {**d.renames(), "/etc/ssh/sshd_config.d": str(etc / "sshd_config.d"),
               "/etc/ssh/sshd_config": str(etc / "sshd_config"), "/etc/ssh/fieldsync-keys": str(d.work / "keys"),
               "fieldsync-tablets": d.group}
    config = etc / "sshd_config"
    config.write_text(renamed(Path("/etc/ssh/sshd_config").read_text(), renames))
    (etc / "sshd_config.d" / "00-e2e-test.conf").write_text("\n".join([
        f"Port {d.ssh_port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
        f"PidFile {d.work / 'sshd.pid'}", "UsePAM no", "PermitRootLogin no", "LogLevel VERBOSE", ""]))
    drop_in = d.work / "sshd_config-fieldsync.conf"  # the file of docs/deploy/, paths and group renamed
    drop_in.write_text(guide_text("sshd_config-fieldsync.conf", **renames))
    shutil.copy(drop_in, etc / "sshd_config.d" / "fieldsync.conf")
    added = subprocess.run([SSHD, "-t", "-f", config], capture_output=True, text=True, check=False)
    assert added.returncode != 0 and "already defined" in added.stderr, added.stderr  # why the guide replaces it
    (etc / "sshd_config.d" / "fieldsync.conf").unlink()
    renames.update({"/opt/fieldsync/src/docs/deploy/sshd_config-fieldsync.conf": str(drop_in),
                    "sshd -t &&": f"{SSHD} -t -f {config} &&"})
    run_guide_block("sed -i 's/^Subsystem[[:space:]]", renames)
    assert "\n#Subsystem" in config.read_text()
    log = d.work / "sshd.log"
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config), "-E", str(log)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(d.ssh_port, process, log, "sshd")
    return process


def start_nginx(d: Deployment) -> subprocess.Popen:
    """The guide's section 4, its blocks run: the self-signed certificate (the fallback without a
    CA), the admins' bcrypt password file readable by nginx only, the server block installed in a
    copy of Debian's own /etc/nginx with the default site removed, `nginx -t`; then that nginx
    serves. Renamed: paths, the port; `htpasswd -i` reads the password from stdin (no terminal)."""
    etc = d.work / "etc-nginx"
    shutil.copytree("/etc/nginx", etc, symlinks=True)
    d.http_port = free_port()
    renames = {**d.renames(), "/etc/nginx": str(etc), "/etc/ssl/fieldsync": str(d.work / "tls"),
               "/run/nginx.pid": str(d.work / "nginx.pid"), "/var/log/nginx/": f"{d.work}/",
               "listen 443 ssl;": f"listen 127.0.0.1:{d.http_port} ssl;"}
    (etc / "nginx.conf").write_text(renamed((etc / "nginx.conf").read_text(), renames))
    site = d.work / "nginx-fieldsync.conf"  # the file of docs/deploy/, paths and port renamed
    site.write_text(guide_text("nginx-fieldsync.conf", **renames))
    renames.update({"/opt/fieldsync/src/docs/deploy/nginx-fieldsync.conf": str(site),
                    "htpasswd -c -B": "htpasswd -i -c -B",
                    "nginx -t &&": f"{NGINX} -e {d.work / 'nginx-test.log'} -t -c {etc / 'nginx.conf'} &&"})
    run_guide_block("-keyout /etc/ssl/fieldsync/privkey.pem", renames)
    tls = d.work / "tls"
    assert (tls / "privkey.pem").stat().st_mode & 0o777 == 0o600
    # certbot needs the network and public DNS: not run here. Its deploy hook is, on a lineage
    # folder as certbot leaves it (here: holding the pair just made), and must install the pair.
    hook = re.search(r"--deploy-hook '([^']*)'", guide_block("certbot certonly")).group(1)
    lineage = d.work / "letsencrypt-live"
    lineage.mkdir()
    for name in ("fullchain.pem", "privkey.pem"):
        (tls / name).rename(lineage / name)
    run_guide_text(hook, renames, {**os.environ, "RENEWED_LINEAGE": str(lineage)}, what="certbot's deploy hook")
    assert [(tls / name).read_bytes() == (lineage / name).read_bytes() for name in ("fullchain.pem", "privkey.pem")] \
        == [True, True]
    assert [(tls / name).stat().st_mode & 0o777 for name in ("fullchain.pem", "privkey.pem")] == [0o644, 0o600]
    assert "syntax is ok" in run_guide_block("htpasswd -c -B", renames, stdin=ADMIN_PASSWORD + "\n").stderr
    htpasswd = etc / "fieldsync.htpasswd"
    assert htpasswd.read_text().startswith(f"{ADMIN}:$2y$")  # bcrypt
    assert htpasswd.stat().st_mode & 0o777 == 0o640 and htpasswd.stat().st_gid == grp.getgrnam("www-data").gr_gid
    assert sorted(os.listdir(etc / "sites-enabled")) == ["fieldsync"]
    log = d.work / "error.log"  # where Debian's nginx.conf writes it, renamed
    process = subprocess.Popen([NGINX, "-e", str(log), "-c", str(etc / "nginx.conf"), "-g", "daemon off;"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(d.http_port, process, log, "nginx")
    return process


@pytest.fixture(scope="module")
def guide_venv():
    """Section 0's first block: fieldsync installed from this checkout into a venv of Debian's
    own python3, the one the units and every command of the guide run. It lives under /srv here
    (0755 all the way), so the service accounts can run it, as they run /opt/fieldsync/venv."""
    require_real_part(os.geteuid() == 0, "root (useradd, sshd's chroot)")
    require_real_part(subprocess.run(["/usr/bin/python3", "-c", "import ensurepip, venv"], capture_output=True,
                                     check=False).returncode == 0, "Debian python3-venv")
    opt = Path(tempfile.mkdtemp(prefix="fieldsync-e2e-opt-", dir="/srv"))
    try:
        opt.chmod(0o755)
        done = run_guide_block("python3 -m venv /opt/fieldsync/venv", {
            "git clone https://git.example/it/fieldsync.git /opt/fieldsync/src": "echo this checkout is the source:",
            "/opt/fieldsync/src": str(DEPLOY.parents[1]), "/opt/fieldsync/venv": str(opt / "venv"),
            "python3 -m venv": "/usr/bin/python3 -m venv"})  # Debian's python3, not this test's
        assert "fieldsync, version" in done.stdout, done.stdout
        yield opt / "venv" / "bin" / "fieldsync"
    finally:
        shutil.rmtree(opt, ignore_errors=True)


@pytest.fixture
def deployment(guide_venv):
    require_real_part(os.geteuid() == 0, "root (useradd, sshd's chroot)")
    require_real_part(sshd_available(), "OpenSSH sshd (Debian openssh-server)")
    require_real_part(Path(NGINX).is_file(), "nginx (Debian nginx)")
    require_real_part(Path(RSYSLOGD).is_file(), "rsyslogd (Debian rsyslog)")
    require_real_part(Path(LOGROTATE).is_file(), "logrotate (Debian logrotate)")
    tag = secrets.token_hex(3)
    # The share lives under /srv: sshd's ChrootDirectory wants every folder on the way root-owned
    # and not writable by others, which /tmp (1777) is not.
    share = Path(tempfile.mkdtemp(prefix="fieldsync-e2e-", dir="/srv"))
    work = Path(f"{share}-etc")
    d = Deployment(share, work, f"fst{tag}", [f"fsa{tag}", f"fsb{tag}"], fieldsync=guide_venv)
    processes: list[subprocess.Popen] = []
    try:
        share.chmod(0o755)
        work.mkdir(mode=0o755)
        for sub in ("keys", "client-keys"):
            (work / sub).mkdir(mode=0o755)
        provision(d)
        processes.append(start_rsyslog(d))
        processes.append(start_sshd(d))
        processes.append(start_nginx(d))
        yield d
    finally:
        for process in processes:
            stop(process)
        for account in d.accounts + d.others:
            subprocess.run(["userdel", account], capture_output=True, check=False)
        subprocess.run(["groupdel", d.group], capture_output=True, check=False)
        shutil.rmtree(share, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def tablet(d: Deployment, account: str, inspector: str, visits: list[tuple[str, str]]) -> config_mod.Config:
    """A real tablet tree whose server is its account's chroot, with real photos, synced."""
    root = d.work / "tablets" / account
    url = f"sftp://{account}@127.0.0.1:{d.ssh_port}/fieldsync"
    cfg = config_mod.load(init_root(root, config_mod.render_default(root, inspector, account, url)))
    cfg = dataclasses.replace(cfg, server=dataclasses.replace(
        cfg.server, key_file=d.key(account), known_hosts=d.known_hosts()))
    csv_path = d.work / "customers.csv"
    csv_path.write_text(SAMPLE_CSV, encoding="utf-8")
    IndexedStore(cfg.state_dir).merge(importer.parse(csv_path), str(csv_path))
    for number, (customer, name) in enumerate(visits):
        file_visit(d, cfg, customer, name, number)
    result = engine.sync_once(cfg)
    assert result.exit_code == 0, result
    return cfg


def file_visit(d: Deployment, cfg: config_mod.Config, customer: str, name: str, number: int) -> Path:
    """A visit with its remarks recorded and two real photos filed, as an inspector makes it."""
    visit = empty_visit(cfg, customer, "周期检查", "计量装置", name)
    manifest.record_remarks(cfg, visit)
    camera = d.work / "camera" / cfg.device
    shots = [make_jpeg(camera / f"IMG_{number}_{i}.jpg", seed=number * 10 + i) for i in range(2)]
    file_photos(cfg, visit, "appearance", shots)
    return visit


def publish_master(d: Deployment, invoke) -> bytes:
    """Root's step of section 5 again (the back office published in the fixture, add_tablet
    installed it in each tree): every tree gets the published data. Returns the customers file."""
    result = invoke("server", "publish-master", d.share)
    assert result.exit_code == 0, result.output
    assert f"installed in {len(d.accounts)} tablet trees" in result.output
    return (d.share / masterdata.SHARE_MASTER / masterdata.REMOTE_DATA).read_bytes()


def refused(action) -> bool:
    try:
        action()
    except OSError:
        return True
    return False


def verify_without_a_usable_home(d: Deployment, tree: Path) -> None:
    """verify --server run by an account whose home it cannot write (the index account's may be
    /nonexistent: "PermissionError: '/nonexistent'") works, and caches in a folder of its own in
    the temp folder. Run as root here (this machine's Python lives under /root, which other
    accounts cannot read), so the unusable home is a path below a plain file: no mkdir makes it."""
    blocker = d.work / "not-a-folder"
    blocker.write_text("")
    temp = d.work / "tmp"
    temp.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_") and k != "FIELDSYNC_CONFIG"}
    env.update(HOME=str(blocker / "home"), XDG_CONFIG_HOME=str(blocker / "config"), TMPDIR=str(temp))
    command = [sys.executable, "-c", "from fieldsync.cli import main; main()", "verify", "--server", str(tree),
               "--ignore-warnings", "--no-gps-warning"]
    for _ in range(2):  # the second run reads the cache the first one wrote
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd="/", check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    assert "(0 hashed" in done.stdout, done.stdout
    assert list((temp / f"fieldsync-{os.getuid()}").rglob("*.json"))


def section_3_and_5_by_hand(d: Deployment) -> list[str]:
    """Section 3 by hand, as the index account: each tablet's tree verified on its own (it holds
    its own ledger), then the first index run, whose pages and thumbnails are the index
    account's, 0644 in folders 0755; and section 5's report. Returns the pages (from SHARE)."""
    for account in d.accounts:
        checked = run_guide_block("systemctl list-timers 'fieldsync-*'", {**d.renames(), "insp-zhangsan": account})
        assert f"tablets/{account}/fieldsync: " in checked.stdout, checked.stdout
        assert "verified: every photo matches its manifest" in checked.stdout, checked.stdout
    verify_without_a_usable_home(d, d.tree(d.accounts[0]))
    index_uid = pwd.getpwnam(f"fsi{d.group[3:]}").pw_uid
    indexed = run_guide_block(
        "runuser -u fieldsync-index -- /opt/fieldsync/venv/bin/fieldsync server index --tablets /srv/fieldsync\n",
        d.renames())
    assert "3 of 3 visits changed" in indexed.stdout, indexed.stdout
    # Section 5's report by hand, as the index account (into a folder it may write).
    reports = d.work / "reports"
    reports.mkdir()
    shutil.chown(reports, index_uid)
    run_guide_block("--format xlsx --out /tmp/2026-11.xlsx", {**d.renames(), "/tmp/2026-11.xlsx": f"{reports}/r.xlsx"})
    assert (reports / "r.xlsx").read_bytes()[:2] == b"PK"  # an XLSX is a zip
    site = [p for p in (d.share / ".fieldsync").rglob("*") if p.relative_to(d.share).as_posix().startswith((SITE, THUMBS))]
    assert site and all(p.stat().st_uid == index_uid for p in site)  # written by the index account
    assert all(p.stat().st_mode & 0o777 == (0o755 if p.is_dir() else 0o644) for p in site)  # read by all
    return [p.relative_to(d.share).as_posix() for p in site if p.suffix == ".html"]


def check_own_modes(d: Deployment, sftp: paramiko.SFTPClient) -> None:
    """Tablet A's own files are 0644 and folders 0755 whatever it asks, and it cannot change a
    mode afterwards (the sshd drop-in's -u 0022 and -P setstat,...)."""
    tree = d.tree(d.accounts[0])
    for path in tree.rglob("*"):
        if path.stat().st_uid != 0:  # root's: the master data copy
            assert path.stat().st_mode & 0o7777 == (0o755 if path.is_dir() else 0o644), path
    with sftp.open("/fieldsync/asked-0666.txt", "w") as handle:
        handle.write(b"x")
    assert refused(lambda: sftp.chmod("/fieldsync/asked-0666.txt", 0o666))
    assert (tree / "asked-0666.txt").stat().st_mode & 0o777 == 0o644
    sftp.remove("/fieldsync/asked-0666.txt")


def check_sftp_log(d: Deployment, own: str) -> None:
    """The log names A for A's upload of `own` and for each refused attempt at B's files, and
    the guide's logrotate snippet rotates it."""
    a, b = d.accounts
    # Who did what: A's upload and its refused attempts on B's files, each line under A's account.
    # sshd cuts a log message at 500 characters, so a long rename line may lose its new name: the
    # upload is found by its temporary name, .NAME.DEVICE.fieldsync-part, opened for writing.
    folder, name = own.rsplit("/", 1)
    upload = f'open "{as_logged(f"/fieldsync/{folder}/.{name}.")}'
    lines = sftp_log_lines(d, upload, f"/{b}/fieldsync/", "Permission denied")
    by_a = [line for line in lines if line.split()[1] == a]
    assert any(upload in line and "WRITE" in line for line in by_a), "A's upload is not in the log under A"
    for verb in ("open", "remove", "posix-rename"):
        assert any(line.split()[3] == verb and f"/{b}/fieldsync/" in line for line in by_a), verb
    assert any("sent status Permission denied" in line for line in by_a)
    assert not any(f"/{b}/fieldsync/" in line for line in lines if line.split()[1] != a)
    # The guide's rotation: the file moves aside, rsyslog reopens it, the next session lands there.
    rotation = d.work / "logrotate.conf"
    rotation.write_text(guide_text("logrotate-fieldsync-sftp", **{
        "/var/log/fieldsync/sftp.log": str(d.sftp_log),
        "/usr/lib/rsyslog/rsyslog-rotate": f"kill -HUP $(cat {d.work / 'rsyslogd.pid'})"}))
    run(LOGROTATE, "--force", "--state", d.work / "logrotate.state", rotation)
    assert upload in (d.sftp_log.parent / "sftp.log.1").read_text("utf-8")
    d.sftp(b)[0].close()
    assert any(line.split()[1] == b and "session opened" in line for line in sftp_log_lines(d, "session opened"))
    # Section 2's "which account wrote this file", run: the guide's example folder is A's visit.
    found = run_guide_block("zgrep -hF", {**d.renames(), "/var/log/fieldsync/sftp.log": str(d.sftp_log)}).stdout
    assert any(line.split()[1:4:2] == [a, "open"] and "WRITE" in line for line in found.splitlines()), found
    assert f"{a}\n" in found and f" {b}\n" not in found  # the refusals per account: A's only


def test_tablets_are_kept_apart_and_the_pages_served_safely(deployment, invoke):
    d = deployment
    a, b = d.accounts
    cfg_a = tablet(d, a, "li.si", [("3300001234", "2026-11-25_0900")])
    cfg_b = tablet(d, b, "wang.wu", [("3300001234", "2026-11-25_1000"), ("3300005678", "2026-11-25_1100")])
    genuine = publish_master(d, invoke)
    master_a = d.tree(a) / masterdata.REMOTE_DIR
    assert master_a.stat().st_uid == 0 and master_a.stat().st_mode & 0o777 == 0o755
    assert (master_a / masterdata.REMOTE_DATA.name).read_bytes() == genuine
    assert (master_a / masterdata.REMOTE_DATA.name).stat().st_mode & 0o777 == 0o644
    assert engine.sync_once(cfg_a).exit_code == 0  # a root-owned folder in its tree does not upset it

    # Each tree is a literal mirror, owned by its own account.
    b_photos = sorted(p for p in d.tree(b).rglob("*.jpg") if ".fieldsync" not in p.parts)
    assert len(b_photos) == 4 and all(p.stat().st_uid == b_photos[0].stat().st_uid for p in b_photos)
    assert list(d.tree(a).rglob("*.jpg"))
    before = {p: p.read_bytes() for p in d.tree(b).rglob("*") if p.is_file()}
    assert any(".fieldsync" in p.parts and "ledgers" in p.parts for p in before)  # B's ledger

    pages = section_3_and_5_by_hand(d)

    client, sftp = d.sftp(a)
    try:
        # The chroot: its tree and the log socket, nothing of B, the pages or the share.
        assert sorted(sftp.listdir("/")) == ["dev", "fieldsync"]
        assert refused(lambda: sftp.remove("/dev/log")) and refused(lambda: sftp.open("/dev/x", "w").write(b"x"))
        check_own_modes(d, sftp)
        own = next(p for p in d.tree(a).rglob("*.jpg")).relative_to(d.tree(a)).as_posix()
        for target in before:
            rel = target.relative_to(d.share).as_posix()  # tablets/B/fieldsync/...
            inside = target.relative_to(d.tree(b)).as_posix()
            for path in (f"/{rel}", f"/../../{rel}", f"/fieldsync/../../{b}/fieldsync/{inside}",
                         f"{d.share}/{rel}", f"/../{b}/fieldsync/{inside}"):
                assert refused(lambda p=path: sftp.open(p, "r").read()), f"read {path}"
                assert refused(lambda p=path: sftp.open(p, "w").write(b"forged")), f"overwrite {path}"
                assert refused(lambda p=path: sftp.remove(p)), f"delete {path}"
                assert refused(lambda p=path: sftp.posix_rename(f"/fieldsync/{own}", p)), f"replace {path}"
        for page in (*pages, "fieldsync.html", ".fieldsync/server-index/state.sqlite"):
            for path in (f"/{page}", f"/../../{page}", f"{d.share}/{page}"):
                assert refused(lambda p=path: sftp.open(p, "w").write(b"<script>")), f"write {path}"
                assert refused(lambda p=path: sftp.remove(p)), f"delete {path}"
        # The chroot itself is root's: nothing can be made beside "fieldsync", nor it replaced.
        assert refused(lambda: sftp.mkdir("/.fieldsync"))
        assert refused(lambda: sftp.open("/fieldsync.html", "w").write(b"x"))
        assert refused(lambda: sftp.rename("/fieldsync", "/gone"))

        # The published master data: A cannot change its read-only copy, nor reach the source.
        master = f"/fieldsync/{masterdata.REMOTE_DIR}"
        for name in (masterdata.REMOTE_DATA.name, masterdata.REMOTE_VERSION.name):
            assert refused(lambda n=name: sftp.open(f"{master}/{n}", "w").write(b"{}"))
            assert refused(lambda n=name: sftp.open(f"{master}/{n}", "a").write(b"{}"))
            assert refused(lambda n=name: sftp.remove(f"{master}/{n}"))
            assert refused(lambda n=name: sftp.posix_rename(f"/fieldsync/{own}", f"{master}/{n}"))
            source = f"{masterdata.SHARE_MASTER}/{masterdata.REMOTE_DIR}/{name}"
            for path in (f"/{source}", f"{d.share}/{source}", f"/../../{source}",
                         f"/../{b}/fieldsync/{masterdata.REMOTE_DIR}/{name}"):
                assert refused(lambda p=path: sftp.open(p, "w").write(b"{}")), f"forge {path}"
        assert refused(lambda: sftp.open(f"{master}/extra.json", "w").write(b"{}"))
        # A owns its .fieldsync, so it can swap its own copy for a forgery: that fools only A,
        # and the next publish-master puts the genuine one back.
        sftp.rename(master, f"{master}-mine")
        sftp.mkdir(master)
        sftp.putfo(io.BytesIO(b'{"FORGED": "by tablet A"}'), f"{master}/{masterdata.REMOTE_DATA.name}")

        # What a tablet can plant in its own tree, and must not be followed by the index or nginx.
        sftp.symlink("/etc/passwd", "/fieldsync/passwd.txt")
        sftp.symlink("/", "/fieldsync/rootfs")
        sftp.symlink(f"{d.share}/tablets/{b}/fieldsync", "/fieldsync/b-tree")
        visit_yaml = next(p for p in d.tree(a).rglob("visit.yaml")).relative_to(d.tree(a)).as_posix()
        sftp.remove(f"/fieldsync/{visit_yaml}")
        sftp.symlink("/etc/shadow", f"/fieldsync/{visit_yaml}")
        customer = visit_yaml.split("/")[0]
        sftp.putfo(io.BytesIO(b"<html><script>alert(document.cookie)</script></html>"),
                   f"/fieldsync/{customer}/evil.html")
        sftp.putfo(io.BytesIO(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
                   f"/fieldsync/{customer}/evil.svg")
        # Folders the index account may not read (-u 0022 keeps a mode the tablet asks for 0700):
        # a customer folder, and a visit folder inside a real customer.
        sftp.mkdir("/fieldsync/3300009999_hidden", 0o700)
        sftp.putfo(io.BytesIO(b"account_no: '3300009999'\n"), "/fieldsync/3300009999_hidden/customer.yaml")
        sftp.mkdir(f"/fieldsync/{customer}/周期检查/计量装置/2026-11-27_0900", 0o700)
    finally:
        client.close()
    assert {p: p.read_bytes() for p in d.tree(b).rglob("*") if p.is_file()} == before
    check_sftp_log(d, own)
    assert (d.share / masterdata.SHARE_MASTER / masterdata.REMOTE_DATA).read_bytes() == genuine
    assert (d.tree(b) / masterdata.REMOTE_DATA).read_bytes() == genuine
    assert masterdata.pull_if_changed(cfg_b)  # B pulls the genuine data, whatever A did
    assert (cfg_b.state_dir / "customers.json").read_bytes() == genuine
    result = invoke("server", "publish-master", d.share)  # root puts A's genuine copy back
    assert result.exit_code == 0, result.output
    assert (d.tree(a) / masterdata.REMOTE_DATA).read_bytes() == genuine
    assert (d.tree(a) / masterdata.REMOTE_DIR).stat().st_uid == 0

    # The index stays inside the share and does not read through A's planted links.
    outside_before = sorted(os.listdir(d.share))
    result = build(d.share, tablets=True, full=True)
    assert all(page.startswith(".fieldsync/") for page in result.pages)
    assert sorted(os.listdir(d.share)) == outside_before
    assert any("visit.yaml" in problem and "symbolic link" in problem for problem in result.problems)
    shadow_root = Path("/etc/shadow").read_text().splitlines()[0]
    for page in (d.share / SITE).rglob("*"):
        if page.is_file():
            assert shadow_root not in page.read_text("utf-8", errors="replace")
    assert not list((d.share / SITE / "tablets" / a / "fieldsync").glob("b-tree*"))

    # Every page and thumbnail is readable through nginx, and only with the admins' password.
    assert d.get(f"/{SITE}/index.html", auth=False)[0] == 401
    assert d.get("/" + quote(b_photos[0].relative_to(d.share).as_posix()), auth=False)[0] == 401
    status, headers, _ = d.get("/")
    assert status == 302 and headers["Location"].endswith("/.fieldsync/site/index.html")
    served = 0
    for path in sorted((d.share / ".fieldsync").rglob("*")):
        rel = path.relative_to(d.share).as_posix()
        if path.is_file() and (rel.startswith(SITE) or rel.startswith(THUMBS)):
            status, headers, body = d.get("/" + quote(rel))
            assert status == 200, (rel, status)
            assert body == path.read_bytes()
            if rel.endswith(".html"):
                assert "script-src 'self'" in headers["Content-Security-Policy"]
            served += 1
    assert served > 10
    assert d.get("/.fieldsync/server-index/state.sqlite")[0] == 403
    private = (f"/{masterdata.SHARE_MASTER}/{masterdata.REMOTE_DATA}", "/.fieldsync/.config/x.json")
    assert [d.get(path)[0] for path in private] == [403, 403]  # only the site, thumbnails, tablet trees
    photo = "/" + quote(b_photos[0].relative_to(d.share).as_posix())
    status, headers, body = d.get(photo)
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and "Content-Disposition" not in headers
    # Planted links are refused, planted HTML and SVG are downloads in a sandbox, never pages.
    tree_a = f"/tablets/{a}/fieldsync"
    for link in ("passwd.txt", "rootfs/etc/passwd", f"b-tree/{b_photos[0].relative_to(d.tree(b)).as_posix()}",
                 quote(visit_yaml)):
        status, _, body = d.get(f"{tree_a}/{quote(link, safe='/%')}")
        assert status in (403, 404), (link, status)
        assert b"root:" not in body
    for name in ("evil.html", "evil.svg"):
        status, headers, _ = d.get(f"{tree_a}/{quote(customer)}/{name}")
        assert status == 200
        assert headers["Content-Type"] == "application/octet-stream"
        assert headers["Content-Disposition"] == "attachment"
        assert "sandbox" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"

    revoke_and_offboard(d, cfg_b, len(b_photos))


def revoke_and_offboard(d: Deployment, cfg_b: config_mod.Config, b_photo_count: int) -> None:
    """Section 9: B revoked (its next pass is refused, and says so), then offboarded as the guide
    does it: tree verified and archived, account, chroot and log socket gone, site updated. Its
    index run is the index account's first since A planted links and 0700 folders: those must
    not stop it (as root they cannot be told apart)."""
    a, b = d.accounts
    run_guide_block("pkill -u insp-zhangsan || true", {**d.renames(), "insp-zhangsan": b})
    revoked = engine.sync_once(cfg_b)
    assert revoked.exit_code == 2 and revoked.refused_key, revoked
    index_account = f"fsi{d.group[3:]}"
    run("chown", "-R", f"{index_account}:{index_account}", d.share / ".fieldsync")  # this test's builds ran as root
    off = run_guide_block("offboard_tablet() {", {**d.renames(), "insp-zhangsan": b,
                                                  "/backup/offboarded": str(d.work / "offboarded"),
                                                  "/etc/rsyslog.d/fieldsync-tablets": str(d.work / "rsyslog-tablets")})
    (archive,) = (d.work / "offboarded").glob(f"{b}-*.tar.gz")
    archived = run("tar", "-tzf", archive).stdout.splitlines()
    assert sum(name.endswith(".jpg") and "/.fieldsync/" not in name for name in archived) == b_photo_count
    assert not (d.share / "tablets" / b).exists() and not (d.work / "rsyslog-tablets" / f"{b}.conf").exists()
    assert b not in {entry.pw_name for entry in pwd.getpwall()}
    mention = [p.relative_to(d.share).as_posix() for p in (d.share / SITE).rglob("*.html")
               if f"tablets/{b}/" in p.read_text("utf-8")]
    assert mention == [] and any(f"tablets/{a}/" in p.read_text("utf-8") for p in (d.share / SITE).rglob("*.html"))
    assert re.search(r", [1-9][0-9]* removed", off.stdout), off.stdout


def mirror_problems(d: Deployment, cfg: config_mod.Config, account: str) -> list[str]:
    """What of the tablet's tree its account's tree on the share lacks (tests.fixtures.syncing's
    check, pointed at the share's path rather than the URL the tablet sees in its chroot)."""
    return syncing.mirror_problems(dataclasses.replace(
        cfg, server=dataclasses.replace(cfg.server, url=d.tree(account).as_uri())))


def install_the_guides_files(d: Deployment) -> None:
    """Section 0's second block, run: the units to /etc/systemd/system and the scripts to
    /usr/local/sbin (both in the work folder here); then, as for every file of docs/deploy/, the
    guide's paths in their text renamed to this deployment's."""
    for sub in ("sbin", "systemd", "var-tmp", "root"):  # there on any Debian machine
        (d.work / sub).mkdir(mode=0o755, exist_ok=True)
    run_guide_block("fieldsync-monthly-report /usr/local/sbin/", d.renames())
    for installed in [*(d.work / "sbin").iterdir(), *(d.work / "systemd").iterdir()]:
        installed.write_text(renamed(installed.read_text("utf-8"), d.renames()), encoding="utf-8")
    assert sorted(p.name for p in (d.work / "sbin").iterdir()) == [
        "fieldsync-backup-borg", "fieldsync-backup-rsync", "fieldsync-health", "fieldsync-monthly-report",
        "fieldsync-restore-tablet"]
    assert all(p.stat().st_mode & 0o777 == 0o755 for p in (d.work / "sbin").iterdir())


def verify_installed_units(d: Deployment) -> None:
    """systemd-analyze verify (no PID 1 needed) of the units as section 0 installed them: here
    every command they run exists (the scripts, this machine's Python), so nothing may be said."""
    names = [p.name.replace("@.", f"@{d.accounts[0]}.") for p in sorted((d.work / "systemd").iterdir())]
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", *names], cwd=d.work / "systemd",
                          capture_output=True, text=True, check=False, env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"})
    assert (done.returncode, done.stdout + done.stderr) == (0, ""), done.stdout + done.stderr


def next_day(d: Deployment, cfgs: dict[str, config_mod.Config]) -> None:
    """Each tablet adds a photo to its first visit (its manifest on the server changes) and files
    a new visit, and syncs."""
    for number, (account, cfg) in enumerate(cfgs.items(), start=5):
        first_visit = next(p.parent for p in cfg.root.rglob("manifest.json") if ".fieldsync" not in p.parts)
        file_photos(cfg, first_visit, "appearance", [make_jpeg(d.work / "camera" / f"late{number}.jpg", seed=number)])
        file_visit(d, cfg, "3300001234", "2026-11-26_0800", number)
        assert engine.sync_once(cfg).exit_code == 0
        assert mirror_problems(d, cfg, account) == []


def after_the_restore(d: Deployment, cfgs: dict[str, config_mod.Config], invoke, env: dict | None = None) -> None:
    """What follows a restore of every tablet's tree from an older backup: the guide's "either
    way" block per account (publish-master, verify of the restored tree, index --full), then each
    tablet's recheck (sync --recheck-server) pushes what was lost, and nothing is missing."""
    a = d.accounts[0]
    for account in d.accounts:
        assert any("missing" in problem for problem in mirror_problems(d, cfgs[account], account))
        done = run_guide_block("server index --tablets --full /srv/fieldsync",
                               {**d.renames(), "insp-zhangsan": account}, env)
        assert "installed in 2 tablet trees" in done.stdout, done.stdout
    assert engine.sync_once(cfgs[a]).lost == []  # an ordinary pass cannot know
    for account, cfg in cfgs.items():
        with engine.Engine(cfg) as eng:
            result = eng.run(recheck_server=True)
        assert result.exit_code == 0 and result.rechecked, result
        assert any(lost.endswith("manifest.json") for lost in result.lost), result.lost
        assert any(lost.endswith(".jpg") for lost in result.lost), result.lost
        assert mirror_problems(d, cfg, account) == []
        verified = invoke("verify", "--server", d.tree(account), "--ignore-warnings", "--no-gps-warning")
        assert verified.exit_code == 0, verified.output
    rebuilt = build(d.share, tablets=True, full=True)
    assert rebuilt.customers == 2 and rebuilt.visits_scanned == 4, rebuilt.problems


def test_a_restore_from_an_older_backup_is_pushed_again_by_the_tablets(deployment, invoke):
    """Section 7 with rsync, block by block: a snapshot by hand, a second one the next day sharing
    every unchanged photo's disk, the restore of the older one, the "either way" block, the
    tablets' recheck; then the monthly restore drill, which must catch a damaged snapshot."""
    d = deployment
    a, b = d.accounts
    install_the_guides_files(d)
    publish_master(d, invoke)
    cfgs = {a: tablet(d, a, "li.si", [("3300001234", "2026-11-25_0900")]),
            b: tablet(d, b, "wang.wu", [("3300005678", "2026-11-25_1100")])}
    backup = d.work / "backup"
    listed = run_guide_block("ls -l /backup/fieldsync/", d.renames())
    older = (backup / "latest").resolve()
    assert f"latest -> {older.name}" in listed.stdout
    # The guide's example snapshot name is one the script makes.
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d{6}", name) for name in (older.name, "2026-11-30T020000"))
    assert not list(older.rglob("*.fieldsync-part")) and not (older / "tablets" / a / "dev").exists()
    assert not (older / "tablets" / a / "fieldsync" / masterdata.REMOTE_DIR).exists()

    next_day(d, cfgs)
    time.sleep(1.1)  # snapshots are named to the second
    run(d.work / "sbin" / "fieldsync-backup-rsync")  # what the timer runs
    newer = (backup / "latest").resolve()
    assert newer != older
    unchanged = next(p for p in (older / "tablets" / a / "fieldsync").rglob("IMG_0_0.jpg"))
    assert unchanged.stat().st_ino == (newer / unchanged.relative_to(older)).stat().st_ino

    # The disaster: every tree restored from the older snapshot, as the guide does it.
    for account in d.accounts:
        run_guide_block("fieldsync-restore-tablet /backup/fieldsync/2026-11-30T020000",
                        {**d.renames(), "/backup/fieldsync/2026-11-30T020000": str(older), "insp-zhangsan": account})
    after_the_restore(d, cfgs, invoke)

    # The restore drill over the latest snapshot: clean, then with one photo in it damaged.
    # (No syslog socket here: the alert goes to stderr instead of through logger.)
    drill = {**d.renames(), "logger -p daemon.err -t fieldsync-alert": "echo >&2 fieldsync-alert:"}
    assert "does not verify" not in run_guide_block("fieldsync-drill", drill).stderr
    damaged = next((newer / "tablets" / b / "fieldsync").rglob("IMG_*.jpg"))
    damaged.unlink()  # a new file, not the one the older snapshot shares
    damaged.write_bytes(b"not the photo the manifest lists")
    alerts = run_guide_block("fieldsync-drill", drill).stderr
    assert f"tablets/{b}/fieldsync does not verify" in alerts and f"tablets/{a}/" not in alerts, alerts


def borg_env(d: Deployment) -> dict:
    """borg keeps its cache and what it knows of each repository in the home of whoever runs it
    (root's): here, in the work folder."""
    return {**os.environ, "BORG_BASE_DIR": str(d.work / "borg-base")}


def borg_archives(d: Deployment) -> list[str]:
    script = """. "$1" && export BORG_REPO BORG_PASSCOMMAND BORG_RSH && borg list --short --glob-archives '{hostname}-*'"""
    return run("sh", "-euc", script, "sh", d.work / "etc-fieldsync" / "borg.env", env=borg_env(d)).stdout.split()


def test_borg_backups_and_a_restore_as_the_guide_writes_them(deployment, invoke):
    """Section 7 with borg, block by block: the backup's SSH key, the vault's account whose key may
    only run `borg serve` on one repository (the loopback sshd plays the vault), borg init with the
    guide's encryption, the key export, the backup script, the unit switched to borg; then a second
    archive the next day, the restore of the older archive by a name the naming scheme makes, the
    "either way" block and the tablets' recheck."""
    require_real_part(shutil.which("borg") is not None, "borg (Debian borgbackup)")
    d = deployment
    a, b = d.accounts
    install_the_guides_files(d)
    publish_master(d, invoke)
    cfgs = {a: tablet(d, a, "li.si", [("3300001234", "2026-11-25_0900")]),
            b: tablet(d, b, "wang.wu", [("3300005678", "2026-11-25_1100")])}
    vault = f"fsv{d.group[3:]}"
    d.others.append(vault)
    names = {**d.renames(), "/srv/borg-fieldsync": str(d.work / "vault"), "borg-fieldsync": vault,
             "borg-fieldsync@vault.example": f"{vault}@127.0.0.1:{d.ssh_port}",
             "ssh-keyscan -t ed25519 vault.example": f"ssh-keyscan -t ed25519 -p {d.ssh_port} 127.0.0.1"}
    env = borg_env(d)
    etc = d.work / "etc-fieldsync"

    key = run_guide_block("ssh-keygen -t ed25519 -N '' -C \"fieldsync borg", names, env)
    pub = (etc / "borg_ed25519.pub").read_text().strip()
    assert pub in key.stdout
    run_guide_block("borg serve --restrict-to-path", {**names, "ssh-ed25519 AAAA… fieldsync borg files": pub}, env)
    run_guide_block("borg init --encryption=repokey-blake2", names, env)
    assert (d.work / "root" / "fieldsync-borg-key.txt").read_text().startswith("BORG_KEY ")
    assert (d.work / "vault" / "repo" / "config").is_file()  # the repository is on the vault
    (older,) = borg_archives(d)
    hostname = socket.gethostname().split(".")[0]
    # The guide's example archive name is one the script makes (on a machine called "files").
    assert re.fullmatch(rf"{re.escape(hostname)}-\d{{4}}-\d\d-\d\dT\d{{6}}", older), older
    assert re.fullmatch(r"files-\d{4}-\d\d-\d\dT\d{6}", "files-2026-11-30T020000")
    unit = (d.work / "systemd" / "fieldsync-backup.service").read_text()
    assert f"\nExecStart={d.work}/sbin/fieldsync-backup-borg\n" in unit, unit
    assert f"\nRequiresMountsFor={d.share}\n" in unit, unit
    verify_installed_units(d)  # the backup unit as the sed left it, and all the others
    # The vault's restriction holds: that key runs no shell command, nor borg on another path.
    ssh = ["ssh", "-i", str(etc / "borg_ed25519"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
           "-o", f"UserKnownHostsFile={etc / 'borg_known_hosts'}", "-p", str(d.ssh_port), f"{vault}@127.0.0.1"]
    shell = subprocess.run([*ssh, "cat /etc/passwd"], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           check=False, timeout=60)
    assert "root:" not in shell.stdout
    elsewhere = subprocess.run(["sh", "-euc", '. "$1" && export BORG_PASSCOMMAND BORG_RSH && borg list "$2"', "sh",
                                etc / "borg.env", f"ssh://{vault}@127.0.0.1:{d.ssh_port}/./other"],
                               capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=False)
    assert elsewhere.returncode != 0

    next_day(d, cfgs)
    time.sleep(1.1)  # archives are named to the second
    run(d.work / "sbin" / "fieldsync-backup-borg", env=env)  # what the timer runs
    archives = borg_archives(d)
    assert len(archives) == 2 and older in archives, archives  # today's first archive is kept

    # The disaster: every tree restored from the older archive, as the guide does it.
    for account in d.accounts:
        run_guide_block("borg extract ::files-2026-11-30T020000",
                        {**names, "files-2026-11-30T020000": older, "insp-zhangsan": account}, env)
        assert not (d.work / "var-tmp" / "fieldsync-restore").exists()
    after_the_restore(d, cfgs, invoke, env)


def enabled_by_the_guide() -> list[str]:
    """The fieldsync units the guide's blocks enable (add_tablet's instance for insp-zhangsan)."""
    blocks = re.findall(r"^```sh\n(.*?)^```$", GUIDE.read_text("utf-8"), flags=re.S | re.M)
    found = re.findall(r"systemctl enable --now \"?(fieldsync[^\s\"]*)", "\n".join(blocks))
    return sorted({name.replace("$1", "insp-zhangsan") for name in found})


def test_the_guides_units_scripts_and_firewall_check_out(tmp_path):
    """The systemd units, shell scripts and nftables snippet of docs/deploy/ pass their tools' own
    checks (systemd-analyze verify, sh -n, nft -c), and the health script raises its alarms."""
    require_real_part(shutil.which("systemd-analyze") is not None, "systemd-analyze (Debian systemd)")
    require_real_part(shutil.which("nft") is not None, "nft (Debian nftables)")
    units = tmp_path / "units"
    units.mkdir()
    names = []
    for unit in sorted(DEPLOY.glob("*.service")) + sorted(DEPLOY.glob("*.timer")):
        shutil.copy(unit, units / unit.name)
        names.append(unit.name.replace("@.", "@insp-zhangsan."))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", *names], cwd=units, capture_output=True,
                          text=True, check=False, env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    # What the guide installs beside them (the venv, the scripts in /usr/local/sbin) is not here.
    complaints = [line for line in (done.stdout + done.stderr).splitlines()
                  if line.strip() and "is not executable: No such file or directory" not in line]
    assert complaints == []
    # The tablets' systemd user unit of section 6, checked the same way by a user manager's rules.
    (user_units := tmp_path / "user").mkdir()
    (runtime := tmp_path / "runtime").mkdir(mode=0o700)
    (user_units / "fieldsync.service").write_text(re.search(r"^```ini\n(.*?)^```$", GUIDE.read_text("utf-8"),
                                                            flags=re.S | re.M).group(1))
    done = subprocess.run(["systemd-analyze", "--user", "verify", "--man=no", "fieldsync.service"], cwd=user_units,
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning", "XDG_RUNTIME_DIR": str(runtime)})
    assert [line for line in (done.stdout + done.stderr).splitlines()  # %h/.local/bin/fieldsync is the tablet's
            if line.strip() and "is not executable: No such file or directory" not in line] == []
    # ...and the check does look (no PID 1 here, which systemd-analyze verify does not need).
    (units / "typo.service").write_text("[Service]\nType=oneshot\nExecStart=/bin/true\nUMsk=0022\n")
    typo = subprocess.run(["systemd-analyze", "verify", "--man=no", "typo.service"], cwd=units, capture_output=True,
                          text=True, check=False)
    assert "Unknown key 'UMsk'" in typo.stdout + typo.stderr
    (units / "typo.service").unlink()
    # Every timer of docs/deploy/ is enabled by a block of the guide, and each of those
    # "systemctl enable" lines works on the files (run offline, into a scratch root).
    enabled = enabled_by_the_guide()
    assert sorted(enabled) == sorted(name for name in names if name.endswith(".timer")), enabled
    root = tmp_path / "root"
    shutil.copytree(units, root / "etc" / "systemd" / "system")
    run("systemctl", f"--root={root}", "enable", *enabled)
    wants = root / "etc" / "systemd" / "system" / "timers.target.wants"
    assert sorted(p.name for p in wants.iterdir()) == sorted(enabled)
    for script in DEPLOY.iterdir():
        if script.read_text("utf-8").startswith("#!/bin/sh"):
            assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
            run("sh", "-n", script)
    run("nft", "-c", "-f", DEPLOY / "nftables-fieldsync.nft")
    # Section 8's firewall block on a copy of Debian's /etc/nftables.conf, twice (the include is
    # added once); loading the rules into this host's kernel is left out.
    etc = tmp_path / "etc"
    etc.mkdir()
    shutil.copy("/etc/nftables.conf", etc / "nftables.conf")
    firewall = {"/opt/fieldsync/src/docs/deploy/": f"{DEPLOY}/", "/etc/nftables.d": str(etc / "nftables.d"),
                "/etc/nftables.conf": str(etc / "nftables.conf"),
                "nft list table inet fieldsync": "echo not run here: nft list table inet fieldsync"}
    for _ in range(2):
        run_guide_block("install -d -m 0755 /etc/nftables.d", firewall)
    assert (etc / "nftables.conf").read_text().count(f'include "{etc}/nftables.d/*.nft"') == 1

    health = DEPLOY / "fieldsync-health"
    calm = {**os.environ, "FIELDSYNC_SHARE": str(tmp_path), "FIELDSYNC_MAX_PERCENT": "101"}
    assert subprocess.run([health], env=calm, capture_output=True, check=False).returncode == 0
    alarmed = subprocess.run([health], env={**calm, "FIELDSYNC_MAX_PERCENT": "0"}, capture_output=True,
                             text=True, check=False)
    assert alarmed.returncode == 1 and "full" in alarmed.stderr and "inodes" in alarmed.stderr
