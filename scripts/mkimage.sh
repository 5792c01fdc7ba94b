#!/usr/bin/env bash
# Build offline test images from Debian's static busybox.
#   scripts/mkimage.sh OUTDIR
# Writes OUTDIR/busybox.tar (docker save, legacy layout, tagged
# berth-test/busybox:latest) and OUTDIR/busybox-rootfs.tar (plain rootfs for
# `import`). Deterministic: fixed mtimes, sorted entries, root ownership.
# Needs python3 and busybox-static (/bin/busybox); installs nothing.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUTDIR=$1
BUSYBOX=${BUSYBOX:-/bin/busybox}
if [ ! -x "$BUSYBOX" ]; then
    echo "mkimage: $BUSYBOX not found (apt-get install busybox-static)" >&2
    exit 1
fi
if ! file_out=$("$BUSYBOX" --list-full 2>/dev/null) || [ -z "$file_out" ]; then
    echo "mkimage: $BUSYBOX does not support --list-full" >&2
    exit 1
fi
mkdir -p "$OUTDIR"

exec python3 - "$OUTDIR" "$BUSYBOX" <<'PY'
import hashlib, io, json, os, platform, subprocess, sys, tarfile

outdir, busybox = sys.argv[1], sys.argv[2]
MTIME = 1704067200  # 2024-01-01T00:00:00Z
CREATED = "2024-01-01T00:00:00Z"
REPO, TAG = "berth-test/busybox", "latest"

applets = sorted(set(
    l.strip() for l in subprocess.run([busybox, "--list-full"], check=True,
                                      capture_output=True, text=True).stdout.splitlines()
    if l.strip()))

files = {}  # path -> (kind, mode, data-or-target)
def d(path, mode=0o755): files[path] = ("dir", mode, None)
def f(path, data, mode=0o644): files[path] = ("file", mode, data)
def l(path, target): files[path] = ("sym", 0o777, target)

for p in ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "proc", "sys",
          "dev", "var", "home", "usr/local", "usr/local/bin"]:
    d(p)
d("root", 0o700)
d("tmp", 0o1777)
with open(busybox, "rb") as fh:
    f("bin/busybox", fh.read(), 0o755)
f("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
f("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
for a in applets:
    if a == "bin/busybox":
        continue
    parent = os.path.dirname(a)
    if parent and parent not in files:
        d(parent)
    l(a, "/bin/busybox")

def layer_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for path in sorted(files):
            kind, mode, data = files[path]
            ti = tarfile.TarInfo(path)
            ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = MTIME, 0, 0, "root", "root"
            ti.mode = mode
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                t.addfile(ti)
            else:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()

layer = layer_tar()
diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
config = {
    "architecture": arch,
    "config": {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["sh"],
    },
    "created": CREATED,
    "history": [{"created": CREATED, "created_by": "scripts/mkimage.sh (busybox-static)"}],
    "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
}
config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
config_hex = hashlib.sha256(config_bytes).hexdigest()
layer_dir = diff_id.split(":")[1]
v1 = json.dumps({"id": layer_dir, "created": CREATED, "os": "linux",
                 "architecture": arch}, sort_keys=True, separators=(",", ":")).encode()
manifest = json.dumps([{"Config": config_hex + ".json", "RepoTags": [REPO + ":" + TAG],
                        "Layers": [layer_dir + "/layer.tar"]}], separators=(",", ":")).encode()
repositories = json.dumps({REPO: {TAG: layer_dir}}, separators=(",", ":")).encode()

save = [
    (config_hex + ".json", config_bytes),
    (layer_dir + "/", None),
    (layer_dir + "/VERSION", b"1.0"),
    (layer_dir + "/json", v1),
    (layer_dir + "/layer.tar", layer),
    ("manifest.json", manifest),
    ("repositories", repositories),
]
def write_tar(path, entries):
    tmp = path + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in entries:
            ti = tarfile.TarInfo(name.rstrip("/"))
            ti.mtime, ti.uid, ti.gid = MTIME, 0, 0
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            else:
                ti.mode, ti.size = 0o644, len(data)
                t.addfile(ti, io.BytesIO(data))
    os.replace(tmp, path)

write_tar(os.path.join(outdir, "busybox.tar"), save)
with open(os.path.join(outdir, "busybox-rootfs.tar.tmp"), "wb") as fh:
    fh.write(layer)
os.replace(os.path.join(outdir, "busybox-rootfs.tar.tmp"), os.path.join(outdir, "busybox-rootfs.tar"))
print("sha256:" + config_hex)
PY
