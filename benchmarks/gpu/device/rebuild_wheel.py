"""On the GPU machine: join /tmp/xzparts/ort.tar.xz.* (the wheel's files, xz-compressed: 4 device calls
instead of 5), check the sha256, and re-zip them as the wheel at /tmp/parts/part.0, so that
on-device.sh (which cats /tmp/parts/part.* into the wheel) runs unchanged."""
import glob, hashlib, io, os, sys, tarfile, time, zipfile
t0 = time.time()
want_sha, name = sys.argv[1], sys.argv[2]
parts = sorted(glob.glob("/tmp/xzparts/ort.tar.xz.*"), key=lambda p: int(p.rsplit(".", 1)[1]))
blob = b"".join(open(p, "rb").read() for p in parts)
got = hashlib.sha256(blob).hexdigest()
print(f"{len(parts)} parts, {len(blob)} bytes, sha256 {'OK' if got == want_sha else 'MISMATCH ' + got}")
if got != want_sha:
    sys.exit(1)
os.makedirs("/tmp/parts", exist_ok=True)
with tarfile.open(fileobj=io.BytesIO(blob), mode="r:xz") as tar, \
        zipfile.ZipFile("/tmp/parts/part.0", "w", zipfile.ZIP_STORED) as whl:
    for member in tar:
        if member.isfile():
            whl.writestr(member.name.removeprefix("./"), tar.extractfile(member).read())
print(f"rebuilt {name} as /tmp/parts/part.0 ({os.path.getsize('/tmp/parts/part.0')} bytes) in {time.time() - t0:.1f} s")
