#!/usr/bin/env python3
"""A stand-in for the oVirt engine's REST API, for holdfast's VM disk tests.

Only the calls `holdfast vm` makes are implemented, with documents shaped like
oVirt/ovirt-engine-api-model's XML and the same state machines (a backup
initializing -> ready -> finalizing -> succeeded; an image transfer
initializing -> transferring -> finalizing_success -> finished_success).

The data path is real: each image transfer gets its own qemu-nbd on a unix
socket (with the checkpoint's dirty bitmap for an incremental backup) and a
ticket in a real ovirt-imageio daemon that this script starts, exactly as
ovirt-imageio's container/app/entrypoint.py does. transfer_url points at a
byte-counting relay in front of the daemon, so that the tests can see how
many image bytes went over the wire, and cut a connection on purpose.

Checkpoints are qcow2 persistent dirty bitmaps made with `qemu-img bitmap`,
one per checkpoint, all left enabled: the bitmap of checkpoint C records every
write since C, which is what an incremental backup from C must read.

Usage: ovirt_standin.py STATE_DIR IMAGEIO_BIN
STATE_DIR/config.json: {"user": "admin@internal", "password": "...",
  "vms": [{"id", "name", "ovf", "disks": [{"id", "name", "path", "format": "raw"|"cow"}]}]}
Writes STATE_DIR/ports.json ({"api": PORT}) when ready. Not for production.

Test hooks (no authentication): GET /standin/state (JSON),
POST /standin/faults (JSON, merged): backup_never_ready, transfer_fails,
cut_after_bytes (one relay connection is cut once that many bytes went down
in all), cut_each_connection_after (every connection is cut after that many),
token_expires_after (requests per token before 401), snapshot_never_ok,
attach_fails, vm_attach_fails. The snapshot flow's attached disks appear as symlinks to a raw
copy of the disk under config["device_dir"], named virtio-<disk id[:20]>.
"""

import http.client
import http.server
import json
import os
import re
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from xml.sax.saxutils import escape

STATE_DIR = sys.argv[1]
IMAGEIO = sys.argv[2]
CONFIG = json.load(open(os.path.join(STATE_DIR, "config.json")))
LOCK = threading.RLock()

STATE = {
    "tokens": {},          # token -> requests served
    "backups": {},         # id -> dict
    "transfers": {},       # id -> dict
    "disks": {},           # id -> dict (the VMs' disks and created ones)
    "vms": {},             # id -> dict
    "created_vms": [],     # what POST /vms received
    "attachments": [],     # (vm id, disk id)
    "events": [],
    "relay": {"bytes_down": 0, "bytes_up": 0, "connections": 0, "cuts": 0},
    "faults": {},
    "snapshots": {},         # VM snapshots: id -> dict (the seed's snapshot flow)
    "agent_attachments": {},  # snapshot disks attached to the agent VM: id -> dict
    "deleted_snapshots": [],
    "deleted_vms": [],
    "max_transferring": 0,  # transfers in the transferring phase at once
}

for vm in CONFIG["vms"]:
    STATE["vms"][vm["id"]] = {"id": vm["id"], "name": vm["name"], "ovf": vm.get("ovf", ""),
                              "disks": [d["id"] for d in vm["disks"]]}
    for d in vm["disks"]:
        STATE["disks"][d["id"]] = dict(d, status="ok", vm=vm["id"])


def die_with_parent():
    """Children end with the stand-in, however it ends (the test kills it)."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM


# PR_SET_PDEATHSIG fires when the *thread* that forked exits: every child is
# started by this one long-lived thread, not by a request's thread.
import queue
SPAWN_QUEUE = queue.Queue()


def spawner():
    while True:
        args, reply = SPAWN_QUEUE.get()
        try:
            reply.put(subprocess.Popen(args, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent))
        except Exception as e:  # handed to the caller
            reply.put(e)


threading.Thread(target=spawner, daemon=True).start()


def spawn(args):
    reply = queue.Queue()
    SPAWN_QUEUE.put((args, reply))
    proc = reply.get()
    if isinstance(proc, Exception):
        raise proc
    return proc


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def image_info(path):
    out = subprocess.run(["qemu-img", "info", "--output", "json", "-U", path],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def bitmaps(path):
    info = image_info(path)
    data = info.get("format-specific", {}).get("data", {})
    return [b["name"] for b in data.get("bitmaps", [])]


# --- ovirt-imageio ---------------------------------------------------------

IMAGEIO_PORT = free_port()
# With config["tls"] = {"cert", "key"}: the API and imageio speak https with
# that certificate (signed by the test's CA, as the engine's CA signs both).
TLS = CONFIG.get("tls")
TLS_CONF = (f"enable = true\nkey_file = {TLS['key']}\ncert_file = {TLS['cert']}"
            if TLS else "enable = false")
SCHEME = "https" if TLS else "http"
CONF_DIR = os.path.join(STATE_DIR, "imageio")
os.makedirs(os.path.join(CONF_DIR, "conf.d"), exist_ok=True)
CONTROL_SOCKET = os.path.join(CONF_DIR, "ctl.sock")
with open(os.path.join(CONF_DIR, "conf.d", "daemon.conf"), "w") as f:
    f.write(f"""[daemon]
systemd_enable = false
drop_privileges = false
[tls]
{TLS_CONF}
[control]
transport = unix
socket = {CONTROL_SOCKET}
[local]
enable = false
[remote]
host = 127.0.0.1
port = {IMAGEIO_PORT}
[handlers]
keys = stderr
[logger_root]
level = WARNING
handlers = stderr
""")
IMAGEIO_PROC = spawn([IMAGEIO, "-c", CONF_DIR])


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def control(method, path, body=None):
    conn = UnixHTTPConnection(CONTROL_SOCKET)
    conn.request(method, path, body=json.dumps(body) if body is not None else None)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status >= 300:
        raise RuntimeError(f"imageio control {method} {path}: {resp.status} {data!r}")
    return json.loads(data) if data else None


# --- the relay in front of imageio ------------------------------------------

RELAY_PORT = free_port()


def relay_connection(client):
    with LOCK:
        STATE["relay"]["connections"] += 1
    try:
        upstream = socket.create_connection(("127.0.0.1", IMAGEIO_PORT))
    except OSError:
        client.close()
        return
    done = threading.Event()

    def pump(src, dst, key):
        moved = 0
        try:
            while True:
                data = src.recv(1 << 20)
                if not data:
                    break
                moved += len(data)
                cut = False
                with LOCK:
                    STATE["relay"][key] += len(data)
                    once = STATE["faults"].get("cut_after_bytes")
                    each = STATE["faults"].get("cut_each_connection_after")
                    if key == "bytes_down" and once is not None and STATE["relay"][key] > once:
                        STATE["faults"].pop("cut_after_bytes")
                        cut = True
                    if key == "bytes_down" and each is not None and moved > each:
                        cut = True
                    if cut:
                        STATE["relay"]["cuts"] += 1
                if cut:
                    dst.sendall(data[: len(data) // 2])
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            done.set()
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    threading.Thread(target=pump, args=(client, upstream, "bytes_up"), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client, "bytes_down"), daemon=True).start()


def relay_main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", RELAY_PORT))
    srv.listen(64)
    while True:
        client, _ = srv.accept()
        relay_connection(client)


threading.Thread(target=relay_main, daemon=True).start()


# --- transfers: qemu-nbd + ticket -------------------------------------------

def start_nbd(transfer, path, fmt, read_only, bitmap):
    sock = os.path.join(STATE_DIR, f"nbd-{transfer['id']}.sock")
    args = ["qemu-nbd", "--persistent", "--shared=8", f"--format={fmt}", f"--socket={sock}",
            "--cache=writeback", "--discard=unmap", "--detect-zeroes=unmap"]
    if read_only:
        args.append("--read-only")
    if fmt == "qcow2":
        args.append("--allocation-depth")
    if bitmap:
        args.append(f"--bitmap={bitmap}")
    args.append(path)
    proc = spawn(args)
    for _ in range(200):
        if os.path.exists(sock):
            break
        time.sleep(0.02)
    transfer["_nbd"] = proc
    return sock


def open_transfer(t):
    disk = STATE["disks"][t["disk"]]
    fmt = "qcow2" if disk["format"] == "cow" else "raw"
    bitmap = None
    if t["direction"] == "download" and t.get("backup"):
        backup = STATE["backups"][t["backup"]]
        bitmap = backup.get("from_checkpoint_id")
    sock = start_nbd(t, disk["path"], fmt, t["direction"] == "download", bitmap)
    size = image_info(disk["path"])["virtual-size"]
    ticket = {"uuid": t["id"], "url": f"nbd:unix:{sock}", "size": size,
              "ops": ["read"] if t["direction"] == "download" else ["read", "write"],
              "timeout": 300, "inactivity_timeout": 60, "sparse": True,
              "dirty": bitmap is not None, "transfer_id": t["id"]}
    control("PUT", f"/tickets/{t['id']}", ticket)


def close_transfer(t):
    try:
        info = control("GET", f"/tickets/{t['id']}")
        t["transferred"] = info.get("transferred", 0)
    except Exception:
        pass
    try:
        control("DELETE", f"/tickets/{t['id']}")
    except Exception:
        pass
    proc = t.pop("_nbd", None)
    if proc:
        proc.terminate()
        proc.wait()


# --- XML documents ------------------------------------------------------------

def el(name, value):
    return f"<{name}>{escape(str(value))}</{name}>"


def vm_xml(vm, all_content):
    body = el("name", vm["name"]) + "<status>up</status>"
    if all_content:
        body += ("<initialization><configuration><type>ovf</type>" + el("data", vm["ovf"])
                 + "</configuration></initialization>")
    return f'<vm href="/ovirt-engine/api/vms/{vm["id"]}" id="{vm["id"]}">{body}</vm>'


def disk_xml(d):
    size = d.get("provisioned_size") or image_info(d["path"])["virtual-size"]
    return (f'<disk href="/ovirt-engine/api/disks/{d["id"]}" id="{d["id"]}">' + el("name", d.get("name", d["id"]))
            + el("provisioned_size", size) + el("format", d["format"])
            + el("backup", "incremental" if d["format"] == "cow" else "none")
            + el("sparse", "true") + el("status", d["status"])
            + '<storage_domains><storage_domain id="sd-1"/></storage_domains></disk>')


def snapshot_xml(snap, all_content):
    body = el("description", snap["description"] or "") + el("snapshot_status", snap["status"])
    if all_content:
        body += ("<initialization><configuration><type>ovf</type>" + el("data", snap["ovf"])
                 + "</configuration></initialization>")
    return f'<snapshot href="{API}/vms/{snap["vm"]}/snapshots/{snap["id"]}" id="{snap["id"]}">{body}</snapshot>'


def backup_xml(b):
    body = el("phase", b["phase"]) + el("to_checkpoint_id", b["to_checkpoint_id"])
    if b.get("from_checkpoint_id"):
        body += el("from_checkpoint_id", b["from_checkpoint_id"])
    body += "<disks>" + "".join(f'<disk id="{d}"/>' for d in b["disks"]) + "</disks>"
    body += f'<vm id="{b["vm"]}"/>'
    return f'<backup href="/ovirt-engine/api/vms/{b["vm"]}/backups/{b["id"]}" id="{b["id"]}">{body}</backup>'


def transfer_xml(t):
    body = el("phase", t["phase"]) + el("direction", t["direction"]) + el("format", "raw")
    if t["phase"] == "transferring":
        url = f"{SCHEME}://127.0.0.1:{RELAY_PORT}/images/{t['id']}"
        body += el("transfer_url", url) + el("proxy_url", url)
    body += f'<disk id="{t["disk"]}"/>'
    if t.get("backup"):
        body += f'<backup id="{t["backup"]}"/>'
    return f'<image_transfer href="/ovirt-engine/api/imagetransfers/{t["id"]}" id="{t["id"]}">{body}</image_transfer>'


def fault(message, detail=""):
    return f"<fault><reason>{escape(message)}</reason><detail>{escape(detail)}</detail></fault>"


def xml_id(text, tag):
    m = re.search(rf'<{tag}\b[^>]*\bid="([^"]+)"', text)
    return m.group(1) if m else None


def xml_text(text, tag):
    m = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S)
    if not m:
        return None
    from xml.sax.saxutils import unescape
    return unescape(m.group(1), {"&quot;": "\"", "&apos;": "'"})


# --- state machines, moved on by each GET ---------------------------------------

def advance_backup(b):
    if b["phase"] == "initializing":
        b["phase"] = "starting"
    elif b["phase"] == "starting" and not STATE["faults"].get("backup_never_ready"):
        b["phase"] = "ready"
    elif b["phase"] == "finalizing":
        if any(t["phase"] not in ("finished_success", "finished_failure")
               for t in STATE["transfers"].values() if t.get("backup") == b["id"]):
            return
        b["phase"] = "succeeded"


def advance_transfer(t):
    if t["phase"] == "initializing":
        if STATE["faults"].get("transfer_fails"):
            t["phase"] = "finished_failure"
            return
        open_transfer(t)
        t["phase"] = "transferring"
        now = sum(1 for x in STATE["transfers"].values() if x["phase"] == "transferring")
        STATE["max_transferring"] = max(STATE["max_transferring"], now)
    elif t["phase"] == "finalizing_success":
        close_transfer(t)
        t["phase"] = "finished_success"
        if t["direction"] == "upload":
            STATE["disks"][t["disk"]]["status"] = "ok"
    elif t["phase"] == "cancelled_user":
        close_transfer(t)
        t["phase"] = "finished_failure"
        if t["direction"] == "upload":
            disk = STATE["disks"].pop(t["disk"], None)
            if disk and os.path.exists(disk["path"]):
                os.unlink(disk["path"])


# --- HTTP -------------------------------------------------------------------------

API = "/ovirt-engine/api"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if os.environ.get("STANDIN_LOG"):
            sys.stderr.write("standin: " + fmt % args + "\n")

    def reply(self, status, body, ctype="application/xml"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n).decode() if n else ""

    def authorized(self):
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if token not in STATE["tokens"]:
            return False
        STATE["tokens"][token] += 1
        limit = STATE["faults"].get("token_expires_after")
        if limit is not None and STATE["tokens"][token] > limit:
            del STATE["tokens"][token]
            STATE["faults"].pop("token_expires_after")
            return False
        return True

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path, urllib.parse.parse_qs(url.query)
        body = self.body() if method == "POST" else ""
        with LOCK:
            try:
                status, doc, ctype = self.dispatch(method, path, query, body)
            except KeyError as e:
                status, doc, ctype = 404, fault("Not found", str(e)), "application/xml"
            except Exception as e:  # the test sees a 500 and the reason
                status, doc, ctype = 500, fault("Stand-in error", repr(e)), "application/xml"
        self.reply(status, doc, ctype)

    def dispatch(self, method, path, query, body):
        X = "application/xml"
        if path == "/standin/state":
            public = json.loads(json.dumps(STATE, default=lambda o: None))
            return 200, json.dumps(public), "application/json"
        if path == "/standin/faults" and method == "POST":
            STATE["faults"].update(json.loads(body))
            return 200, "{}", "application/json"
        if path == "/ovirt-engine/sso/oauth/token" and method == "POST":
            form = urllib.parse.parse_qs(body)
            ok = (form.get("grant_type") == ["password"] and form.get("scope") == ["ovirt-app-api"]
                  and form.get("username") == [CONFIG["user"]]
                  and form.get("password") == [CONFIG["password"]])
            if not ok:
                return 400, json.dumps({"error_code": "access_denied",
                                        "error": "Cannot authenticate user"}), "application/json"
            token = uuid.uuid4().hex
            STATE["tokens"][token] = 0
            return 200, json.dumps({"access_token": token, "token_type": "bearer",
                                    "scope": "ovirt-app-api"}), "application/json"
        if not path.startswith(API):
            return 404, fault("Not found", path), X
        if not self.authorized():
            return 401, fault("Unauthorized"), X
        parts = [p for p in path[len(API):].split("/") if p]
        all_content = self.headers.get("All-Content", "").lower() == "true"

        if parts == ["vms"] and method == "GET":
            search = query.get("search", [""])[0]
            name = search[len("name="):] if search.startswith("name=") else None
            vms = [v for v in STATE["vms"].values() if name is None or v["name"] == name]
            return 200, "<vms>" + "".join(vm_xml(v, all_content) for v in vms) + "</vms>", X
        if parts == ["vms"] and method == "POST":
            name = xml_text(body, "name")
            vm_id = str(uuid.uuid4())
            STATE["created_vms"].append({"id": vm_id, "name": name, "cluster": xml_text(body, "cluster"),
                                         "ovf": xml_text(body, "data"),
                                         "configuration_type": xml_text(body, "type")})
            STATE["vms"][vm_id] = {"id": vm_id, "name": name, "ovf": xml_text(body, "data") or "", "disks": []}
            return 201, vm_xml(STATE["vms"][vm_id], False), X
        if len(parts) == 2 and parts[0] == "vms" and method == "GET":
            return 200, vm_xml(STATE["vms"][parts[1]], all_content), X
        if len(parts) == 2 and parts[0] == "vms" and method == "DELETE":
            STATE["vms"].pop(parts[1])
            STATE["created_vms"] = [v for v in STATE["created_vms"] if v["id"] != parts[1]]
            STATE["deleted_vms"].append(parts[1])
            return 200, "", X
        if len(parts) == 3 and parts[0] == "vms" and parts[2] == "diskattachments":
            vm = STATE["vms"][parts[1]]
            if method == "GET":
                atts = "".join(
                    f'<disk_attachment id="{d}"><active>true</active><bootable>true</bootable>'
                    f'<interface>virtio_scsi</interface><disk href="{API}/disks/{d}" id="{d}"/></disk_attachment>'
                    for d in vm["disks"])
                return 200, f"<disk_attachments>{atts}</disk_attachments>", X
            disk_id = xml_id(body, "disk")
            STATE["disks"][disk_id]  # 404 for an unknown disk
            snapshot_id = xml_id(body, "snapshot")
            if snapshot_id is not None:
                # A snapshot's disk on the agent VM: its device appears under
                # device_dir, named by the disk id as udev names virtio disks.
                if STATE["faults"].get("attach_fails"):
                    return 409, fault("Operation Failed", "Cannot attach the disk"), X
                snap = STATE["snapshots"][snapshot_id]
                att_id = str(uuid.uuid4())
                link = os.path.join(CONFIG["device_dir"], "virtio-" + disk_id[:20])
                os.symlink(snap["copies"][disk_id], link)
                STATE["agent_attachments"][att_id] = {"agent": vm["id"], "disk": disk_id,
                                                      "snapshot": snapshot_id, "link": link,
                                                      "active": xml_text(body, "active")}
                return 201, (f'<disk_attachment id="{att_id}"><active>true</active>'
                             f'<disk id="{disk_id}"/></disk_attachment>'), X
            if STATE["faults"].get("vm_attach_fails"):
                return 409, fault("Operation Failed", "Cannot attach the disk to the VM"), X
            vm["disks"].append(disk_id)
            STATE["attachments"].append([vm["id"], disk_id, xml_text(body, "interface"), xml_text(body, "bootable")])
            return 201, f'<disk_attachment id="{disk_id}"><disk id="{disk_id}"/></disk_attachment>', X
        if len(parts) == 3 and parts[0] == "vms" and parts[2] == "snapshots" and method == "POST":
            vm = STATE["vms"][parts[1]]
            sid = str(uuid.uuid4())
            copies = {}
            for d in vm["disks"]:
                copy = os.path.join(STATE_DIR, f"snap-{sid}-{d}.raw")
                subprocess.run(["qemu-img", "convert", "-q", "-U", "-O", "raw",
                                STATE["disks"][d]["path"], copy], check=True)
                copies[d] = copy
            snap = {"id": sid, "vm": vm["id"], "description": xml_text(body, "description"),
                    "persist_memorystate": xml_text(body, "persist_memorystate"),
                    "status": "locked", "copies": copies, "ovf": vm["ovf"]}
            STATE["snapshots"][sid] = snap
            return 201, snapshot_xml(snap, False), X
        if len(parts) == 4 and parts[0] == "vms" and parts[2] == "snapshots":
            snap = STATE["snapshots"][parts[3]]
            if method == "GET":
                if snap["status"] == "locked" and not STATE["faults"].get("snapshot_never_ok"):
                    snap["status"] = "ok"
                return 200, snapshot_xml(snap, all_content), X
            if method == "DELETE":
                for copy in snap["copies"].values():
                    if os.path.exists(copy):
                        os.unlink(copy)
                STATE["snapshots"].pop(parts[3])
                STATE["deleted_snapshots"].append(parts[3])
                return 200, "", X
        if len(parts) == 5 and parts[2] == "snapshots" and parts[4] == "disks" and method == "GET":
            snap = STATE["snapshots"][parts[3]]
            docs = "".join(
                f'<disk id="{d}">' + el("name", STATE["disks"][d].get("name", d))
                + el("provisioned_size", image_info(copy)["virtual-size"])
                + el("format", STATE["disks"][d]["format"]) + f'<snapshot id="{snap["id"]}"/></disk>'
                for d, copy in snap["copies"].items())
            return 200, f"<disks>{docs}</disks>", X
        if len(parts) == 4 and parts[0] == "vms" and parts[2] == "diskattachments" and method == "DELETE":
            att = STATE["agent_attachments"].pop(parts[3])
            if os.path.lexists(att["link"]):
                os.unlink(att["link"])
            return 200, "", X
        if len(parts) == 3 and parts[0] == "vms" and parts[2] == "backups" and method == "POST":
            vm = STATE["vms"][parts[1]]
            from_cp = xml_text(body, "from_checkpoint_id")
            disks = re.findall(r'<disk\b[^>]*\bid="([^"]+)"', body)
            if not disks:
                return 400, fault("Incomplete parameters", "Backup [disks] required for add"), X
            to_cp = str(uuid.uuid4())
            for d in disks:
                disk = STATE["disks"][d]
                if from_cp is not None:
                    if disk["format"] != "cow" or from_cp not in bitmaps(disk["path"]):
                        return 400, fault("Operation Failed",
                                          f"Checkpoint {from_cp} is not defined for disk {d}"), X
            for d in disks:
                disk = STATE["disks"][d]
                if disk["format"] == "cow":
                    subprocess.run(["qemu-img", "bitmap", "--add", disk["path"], to_cp], check=True)
            b = {"id": str(uuid.uuid4()), "vm": vm["id"], "phase": "initializing", "disks": disks,
                 "from_checkpoint_id": from_cp, "to_checkpoint_id": to_cp}
            STATE["backups"][b["id"]] = b
            return 201, backup_xml(b), X
        if len(parts) == 4 and parts[0] == "vms" and parts[2] == "backups" and method == "GET":
            b = STATE["backups"][parts[3]]
            advance_backup(b)
            return 200, backup_xml(b), X
        if len(parts) == 5 and parts[2] == "backups" and parts[4] == "finalize" and method == "POST":
            b = STATE["backups"][parts[3]]
            if b["phase"] in ("succeeded", "failed"):
                return 409, fault("Operation Failed", f"backup is {b['phase']}"), X
            b["phase"] = "finalizing"
            return 200, "<action><status>complete</status></action>", X

        if parts == ["imagetransfers"] and method == "POST":
            disk_id = xml_id(body, "disk")
            STATE["disks"][disk_id]
            backup_id = xml_id(body, "backup")
            direction = xml_text(body, "direction") or "upload"
            if backup_id is not None:
                b = STATE["backups"][backup_id]
                if b["phase"] != "ready":
                    return 409, fault("Operation Failed", f"backup {backup_id} is {b['phase']}"), X
            t = {"id": str(uuid.uuid4()), "disk": disk_id, "backup": backup_id, "direction": direction,
                 "phase": "initializing", "format": xml_text(body, "format")}
            STATE["transfers"][t["id"]] = t
            return 201, transfer_xml(t), X
        if len(parts) == 2 and parts[0] == "imagetransfers" and method == "GET":
            t = STATE["transfers"][parts[1]]
            advance_transfer(t)
            return 200, transfer_xml(t), X
        if len(parts) == 3 and parts[0] == "imagetransfers" and method == "POST":
            t = STATE["transfers"][parts[1]]
            if parts[2] == "finalize":
                if t["phase"] in ("finished_success", "finished_failure"):
                    return 409, fault("Operation Failed", f"transfer is {t['phase']}"), X
                t["phase"] = "finalizing_success"
            elif parts[2] == "cancel":
                if t["phase"] not in ("finished_success", "finished_failure"):
                    t["phase"] = "cancelled_user"
            else:
                return 404, fault("Not found", parts[2]), X
            return 200, "<action><status>complete</status></action>", X

        if parts == ["disks"] and method == "POST":
            disk_id = str(uuid.uuid4())
            fmt = xml_text(body, "format") or "raw"
            size = int(xml_text(body, "provisioned_size"))
            path = os.path.join(STATE_DIR, f"disk-{disk_id}.img")
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2" if fmt == "cow" else "raw", path, str(size)],
                           check=True)
            d = {"id": disk_id, "name": xml_text(body, "name") or disk_id, "path": path, "format": fmt,
                 "status": "locked", "provisioned_size": size, "sparse": xml_text(body, "sparse"),
                 "storage_domains": xml_text(body, "storage_domains")}
            STATE["disks"][disk_id] = d
            return 201, disk_xml(d), X
        if len(parts) == 2 and parts[0] == "disks":
            d = STATE["disks"][parts[1]]
            if method == "GET":
                if d["status"] == "locked" and not any(
                        t["disk"] == d["id"] for t in STATE["transfers"].values()):
                    d["status"] = "ok"  # created: ready for an upload
                return 200, disk_xml(d), X
            if method == "DELETE":
                STATE["disks"].pop(parts[1])
                if os.path.exists(d["path"]):
                    os.unlink(d["path"])
                return 200, "", X
        return 404, fault("Not found", f"{method} {path}"), X


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    # The daemon must answer before the first transfer.
    for _ in range(300):
        if os.path.exists(CONTROL_SOCKET):
            break
        if IMAGEIO_PROC.poll() is not None:
            sys.exit("ovirt-imageio exited")
        time.sleep(0.05)
    server = Server(("127.0.0.1", 0), Handler)
    if TLS:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(TLS["cert"], TLS["key"])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    # The test hooks (/standin/...) also answer on plain HTTP.
    hooks = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    ports = {"api": server.server_address[1], "hooks": hooks.server_address[1],
             "imageio": IMAGEIO_PORT, "relay": RELAY_PORT}
    tmp = os.path.join(STATE_DIR, "ports.json.tmp")
    with open(tmp, "w") as f:
        json.dump(ports, f)
    os.rename(tmp, os.path.join(STATE_DIR, "ports.json"))
    try:
        server.serve_forever()
    finally:
        IMAGEIO_PROC.terminate()


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, lambda *a: (IMAGEIO_PROC.terminate(), sys.exit(0)))
    main()
