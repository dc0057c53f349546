#!/usr/bin/env python3
"""The calls of GitHub's cache protocol v2 as @actions/cache makes them, with plain HTTP and no tar:
for bench.py's `s3cache serve` rows, so that they time the server and not a client.

  gha_client.py upload BASE_URL KEY FILE     CreateCacheEntry, Put Block of 64 MiB blocks with 8 in
                                             flight (Put Blob when the file fits 128 MiB, as the
                                             toolkit does), Put Block List, FinalizeCacheEntryUpload
  gha_client.py download BASE_URL KEY        GetCacheEntryDownloadURL, then GET the entry to nowhere
"""
import base64
import concurrent.futures
import http.client
import json
import os
import sys
import urllib.parse
import uuid

BLOCK = 64 << 20
SINGLE_SHOT = 128 << 20
VERSION = "b" * 64
TWIRP = "twirp/github.actions.results.api.v1.CacheService/"


def call(base, method, body):
    url = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port)
    connection.request("POST", f"/{TWIRP}{method}", json.dumps(body), {"content-type": "application/json", "authorization": "Bearer bench"})
    answer = connection.getresponse()
    text = answer.read()
    if answer.status != 200:
        sys.exit(f"{method}: HTTP {answer.status}: {text.decode()}")
    return json.loads(text)


def send(url, query, body, headers):
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port)
    connection.request("PUT", f"{parts.path}?{parts.query}{query}", body, headers)
    answer = connection.getresponse()
    text = answer.read()
    if answer.status != 201:
        sys.exit(f"PUT {query}: HTTP {answer.status}: {text.decode()}")


def upload(base, key, path):
    url = call(base, "CreateCacheEntry", {"key": key, "version": VERSION})["signed_upload_url"]
    size = os.path.getsize(path)
    if size <= SINGLE_SHOT:
        with open(path, "rb") as f:
            send(url, "", f, {"x-ms-blob-type": "BlockBlob", "content-length": str(size)})
    else:
        prefix = str(uuid.uuid4())
        ids = [base64.b64encode(f"{prefix}{i:012d}".encode()).decode() for i in range((size + BLOCK - 1) // BLOCK)]

        def block(index):
            with open(path, "rb") as f:
                f.seek(index * BLOCK)
                data = f.read(BLOCK)
            send(url, f"&comp=block&blockid={urllib.parse.quote(ids[index])}", data, {"content-length": str(len(data))})

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(block, range(len(ids))))
        listing = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>" + "".join(f"<Latest>{i}</Latest>" for i in ids) + "</BlockList>"
        send(url, "&comp=blocklist", listing.encode(), {"content-type": "application/xml"})
    finished = call(base, "FinalizeCacheEntryUpload", {"key": key, "version": VERSION, "size_bytes": str(size)})
    if not finished.get("ok"):
        sys.exit(f"FinalizeCacheEntryUpload: {finished}")


def download(base, key):
    found = call(base, "GetCacheEntryDownloadURL", {"key": key, "version": VERSION})
    if not found.get("ok"):
        sys.exit(f"{key}: a miss")
    parts = urllib.parse.urlsplit(found["signed_download_url"])
    connection = http.client.HTTPConnection(parts.hostname, parts.port)
    connection.request("GET", f"{parts.path}?{parts.query}")
    answer = connection.getresponse()
    while answer.read(1 << 20):
        pass
    if answer.status != 200:
        sys.exit(f"download: HTTP {answer.status}")


if __name__ == "__main__":
    verb, base, key, *rest = sys.argv[1:]
    upload(base, key, *rest) if verb == "upload" else download(base, key)
