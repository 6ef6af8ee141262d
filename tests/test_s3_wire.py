"""The light S3 client without a server: its signatures against AWS's published examples, the
listings it parses, which configs it serves, and that it addresses what boto3 addresses."""

from __future__ import annotations

import io
from typing import Any

import pytest

from regstore.store import s3wire
from regstore.store.s3 import S3Settings, connect
from regstore.store.s3wire import (EMPTY_SHA256, S3ProtocolError, S3ResponseError, WireClient,
                                   canonical_query, parse_listing, sign_v4, signing_key,
                                   unsupported)

# --- Signature Version 4: the examples of AWS's documentation -------------------------------

S3_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # the S3 guide's example key
SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"  # the SigV4 test suite's


def s3_example(path: str, query: list[tuple[str, str]], extra: dict[str, str]) -> str:
    headers = {"host": "examplebucket.s3.amazonaws.com", "x-amz-date": "20130524T000000Z",
               "x-amz-content-sha256": EMPTY_SHA256, **extra}
    return sign_v4("GET", path, canonical_query(query), headers, EMPTY_SHA256,
                   access_key="AKIAIOSFODNN7EXAMPLE", amz_date="20130524T000000Z",
                   key=signing_key(S3_SECRET, "20130524", "us-east-1", "s3"),
                   region="us-east-1")


def test_the_s3_guides_get_object_example():
    # "Example: GET Object": the first 10 bytes of test.txt in examplebucket
    assert s3_example("/test.txt", [], {"range": "bytes=0-9"}) == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


def test_the_s3_guides_list_objects_example():
    # "Example: GET Bucket (List Objects)": max-keys=2, prefix=J
    assert s3_example("/", [("prefix", "J"), ("max-keys", "2")], {}).endswith(
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
        "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")


@pytest.mark.parametrize("query, signature", [
    ([], "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),  # get-vanilla
    ([("Param2", "value2"), ("Param1", "value1")],  # get-vanilla-query-order-key-case
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
])
def test_the_signature_v4_test_suite(query, signature):
    headers = {"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"}
    assert sign_v4("GET", "/", canonical_query(query), headers, EMPTY_SHA256,
                   access_key="AKIDEXAMPLE", amz_date="20150830T123600Z",
                   key=signing_key(SUITE_SECRET, "20150830", "us-east-1", "service"),
                   region="us-east-1", service="service") == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}")


def test_the_query_is_encoded_byte_by_byte_and_sorted():
    assert canonical_query([("prefix", "a b/ü~+"), ("list-type", "2"), ("delimiter", "/")]) \
        == "delimiter=%2F&list-type=2&prefix=a%20b%2F%C3%BC~%2B"


# --- listings ---------------------------------------------------------------------------------

NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def listing(*entries: str, truncated: str = "false", extra: str = "",
            encoding: str = "url") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{NS}">'
            f"<Name>b</Name><Prefix>p%2F</Prefix><KeyCount>{len(entries)}</KeyCount>"
            f"<MaxKeys>1000</MaxKeys><EncodingType>{encoding}</EncodingType>"
            f"<IsTruncated>{truncated}</IsTruncated>{extra}{''.join(entries)}"
            "</ListBucketResult>").encode()


def obj(key: str, etag: str = "&quot;9e107d9d372bb6826bd81d3542a419d6&quot;") -> str:
    return (f"<Contents><Key>{key}</Key><LastModified>2024-03-01T10:20:30.456Z</LastModified>"
            f"<ETag>{etag}</ETag><Size>42</Size><StorageClass>STANDARD</StorageClass>"
            "</Contents>")


def test_a_listing_parses_as_boto3_answers_it():
    page = parse_listing(listing(obj("p/a%20b+c"), obj("p%2Fplain%2Fx"),
                                 "<CommonPrefixes><Prefix>p/dir%2B/</Prefix></CommonPrefixes>",
                                 truncated="true",
                                 extra="<NextContinuationToken>t+/=</NextContinuationToken>"))
    assert page["IsTruncated"] is True and page["NextContinuationToken"] == "t+/="
    assert page["Prefix"] == "p/" and page["KeyCount"] == 3
    assert [c["Key"] for c in page["Contents"]] == ["p/a b c", "p/plain/x"]  # radosgw: %2F
    first = page["Contents"][0]
    assert first["Size"] == 42 and first["ETag"] == '"9e107d9d372bb6826bd81d3542a419d6"'
    assert first["LastModified"].timestamp() == 1709288430.456
    assert page["CommonPrefixes"] == [{"Prefix": "p/dir+/"}]


def test_a_listing_time_without_a_zone_is_utc_as_boto3_reads_it(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/New_York")  # a machine clock that is not UTC
    time.tzset()
    try:
        page = parse_listing(listing(obj("p/x").replace(".456Z", ".456")))
        assert page["Contents"][0]["LastModified"].timestamp() == 1709288430.456
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_keys_are_decoded_only_when_the_answer_says_they_are_encoded():
    page = parse_listing(listing(obj("p/a%20b"), encoding="none"))
    assert page["Contents"][0]["Key"] == "p/a%20b"
    empty = parse_listing(listing())
    assert "Contents" not in empty and "CommonPrefixes" not in empty
    assert empty["IsTruncated"] is False


@pytest.mark.parametrize("body, words", [
    (listing().replace(b"<IsTruncated>false</IsTruncated>", b""), "whether it is truncated"),
    (listing(truncated="maybe"), "IsTruncated is 'maybe'"),
    (listing("<Contents><Size>1</Size></Contents>"), "without Key"),
    (listing(obj("p/x").replace("2024-03-01T10:20:30.456Z", "yesterday")), "not a time"),
    (listing(obj("p/x").replace("<Size>42</Size>", "<Size>many</Size>")), "not a number"),
    (listing("<CommonPrefixes></CommonPrefixes>"), "without Prefix"),
    (listing()[:-30], "not well-formed"),
    (b'<!DOCTYPE x [<!ENTITY a "aa">]>' + listing(), "DTD"),
    (b"<Error><Code>AccessDenied</Code></Error>", "'Error', not a listing"),
])
def test_what_is_not_a_whole_listing_fails(body, words):
    with pytest.raises(S3ProtocolError, match=words):
        parse_listing(body)


# --- which configs the light client serves -------------------------------------------------


def settings(**changes: Any) -> S3Settings:
    base = dict(bucket="reg", region="us-east-1", rootdirectory="/r",
                endpoint="http://127.0.0.1:7480", accesskey="AK", secretkey="SK", secure=False,
                path_style=True)
    return S3Settings(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("changes, environ, words", [
    ({}, {}, None),
    ({"endpoint": None, "region": "eu-west-1", "path_style": False, "secure": True}, {}, None),
    ({"endpoint": None, "region": "cn-north-1", "path_style": False}, {}, None),
    ({"endpoint": None, "region": "us-gov-west-1", "path_style": False}, {}, None),
    ({}, {"REGSTORE_S3_CLIENT": "boto3"}, "asks for boto3"),
    ({"accesskey": "", "secretkey": ""}, {}, "AWS chain"),
    ({"secretkey": ""}, {}, "AWS chain"),
    ({"v4auth": False}, {}, "signature version 2"),
    ({"endpoint": "ftp://x"}, {}, "no plain http(s) URL"),
    ({"endpoint": "http://x:port"}, {}, "no valid port"),
    ({"endpoint": "http://user@x"}, {}, "no plain http(s) URL"),
    ({"endpoint": None, "region": "us-iso-east-1", "path_style": False}, {}, "partition"),
    ({"endpoint": None, "region": "moon", "path_style": False}, {}, "partition"),
    ({"endpoint": None, "path_style": False}, {"AWS_ENDPOINT_URL_S3": "http://x"},
     "AWS_ENDPOINT_URL"),
    ({"path_style": False}, {}, "virtual-hosted addressing on a regionendpoint"),
    ({"endpoint": None, "path_style": False, "bucket": "my.bucket"}, {},
     "no plain host name label"),
    ({"endpoint": None, "path_style": False, "bucket": "My_Bucket"}, {},
     "no plain host name label"),
    ({"path_style": True, "bucket": "my.bucket"}, {}, None),
    ({}, {"HTTPS_PROXY": "http://proxy:3128"}, "proxy"),
    ({}, {"http_proxy": "http://proxy:3128"}, "proxy"),
])
def test_configs_the_light_client_leaves_to_boto3(changes, environ, words):
    reason = unsupported(settings(**changes), environ)
    assert (reason is None) if words is None else (words in (reason or ""))


class _Socket:
    """Stands in for a connection's socket: keeps what is sent."""

    def __init__(self) -> None:
        self.sent = b""

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def close(self) -> None:
        pass


def connection_answering(answer: bytes) -> tuple[Any, _Socket]:
    """A kept connection of the light client whose server answers ``answer`` (raw HTTP)."""
    connection = s3wire._Connection.__new__(s3wire._Connection)
    sock = _Socket()
    connection.sock = sock
    connection.reader = io.BufferedReader(io.BytesIO(answer))  # type: ignore[arg-type]
    return connection, sock


def client_answering(s: S3Settings, *answers: bytes) -> tuple[WireClient, list[_Socket]]:
    client = WireClient(s, attempts=1, fallback=lambda: None, environ={})
    sockets = []
    for answer in reversed(answers):
        connection, sock = connection_answering(answer)
        client._idle.append(connection)
        sockets.insert(0, sock)
    return client, sockets


NOT_FOUND = (b"HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\n"
             b"Content-Length: 62\r\n\r\n"
             b"<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>\n\n")


def botocore_url(s: S3Settings, key: str) -> str:
    """The URL boto3 sends a ranged GetObject of ``key`` to (caught before it is sent)."""
    client = connect(s)
    seen: list[str] = []

    def catch(request: Any, **kwargs: Any) -> Any:
        seen.append(request.url)
        raise RuntimeError("caught")

    client.meta.events.register("before-send.s3", catch)
    with pytest.raises(RuntimeError, match="caught"):
        client.get_object(Bucket=s.bucket, Key=key, Range="bytes=0-9")
    return seen[0]


@pytest.mark.parametrize("changes", [
    {},
    {"endpoint": "https://ceph.example:8443/sub/", "secure": True},
    {"endpoint": "http://[::1]:7480"},
    {"endpoint": None, "region": "eu-west-1", "path_style": False, "secure": True},
    {"endpoint": None, "region": "us-east-1", "path_style": False, "secure": True},
    {"endpoint": None, "region": "cn-north-1", "path_style": False, "secure": True},
])
def test_it_addresses_what_boto3_addresses(changes, monkeypatch):
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    s = settings(**changes)
    key = "r/docker/registry/v2/blobs/sha256/ab/ab cd+é/data"
    client, (sock,) = client_answering(s, NOT_FOUND)
    with pytest.raises(S3ResponseError) as caught:
        client.get_object(Bucket=s.bucket, Key=key, Range="bytes=0-9")
    assert caught.value.code == "NoSuchKey" and caught.value.status == 404
    request_line, *lines = sock.sent.decode().split("\r\n")
    method, target, version = request_line.split(" ")
    headers = dict(line.split(": ", 1) for line in lines if line)
    assert version == "HTTP/1.1" and sock.sent.endswith(b"\r\n\r\n")
    scheme = "https" if (s.endpoint or "https").startswith("https") else "http"
    assert (method, f"{scheme}://{headers['host']}{target}") == ("GET", botocore_url(s, key))
    assert client.meta.endpoint_url == connect(s).meta.endpoint_url  # verify's state file name
    assert headers["range"] == "bytes=0-9"
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AK/")
    assert f"/{s.region}/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;" \
           "x-amz-date, Signature=" in headers["authorization"]


def test_transient_answers_are_the_ones_worth_repeating():
    assert s3wire.transient_answer(503, "SlowDown") and s3wire.transient_answer(400,
                                                                                "RequestTimeout")
    assert s3wire.transient_answer(500, "") and s3wire.transient_answer(429, "")
    assert not s3wire.transient_answer(404, "NoSuchKey")
    assert not s3wire.transient_answer(403, "SignatureDoesNotMatch")
    assert not s3wire.transient_answer(412, "PreconditionFailed")


# --- the HTTP/1.1 it speaks ----------------------------------------------------------------------


def get(answer: bytes, **kwargs: Any) -> tuple[dict[str, Any], WireClient]:
    client, _ = client_answering(settings(), answer)
    return client.get_object(Bucket="reg", Key="k", **kwargs), client


def test_bodies_framed_by_length_or_chunks_and_the_connection_kept():
    answer, client = get(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"x\"\r\n"
                         b"Last-Modified: Fri, 01 Mar 2024 10:20:30 GMT\r\n\r\nhello")
    assert answer["Body"].read() == b"hello" and answer["ETag"] == '"x"'
    assert answer["ContentLength"] == 5 and answer["LastModified"].timestamp() == 1709288430
    assert len(client._idle) == 1, "read to its end, the connection is kept"
    chunked = (b"HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n"
               b"X-Folded: a\r\n b\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nT: x\r\n\r\n")
    answer, client = get(chunked, Range="bytes=0-9")
    assert answer["Body"].read() == b"abcde" and len(client._idle) == 1
    assert answer["ResponseMetadata"]["HTTPHeaders"]["x-folded"] == "a b"
    streamed, client = get(chunked)
    assert [streamed["Body"].read(2) for _ in range(4)] == [b"ab", b"cd", b"e", b""]
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"
    assert get(interim)[0]["Body"].read() == b"z"


def test_a_connection_the_server_closes_is_not_kept():
    for answer in (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nz",
                   b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nz",
                   b"HTTP/1.1 200 OK\r\n\r\nto the end"):
        got, client = get(answer, Range="bytes=0-9")
        assert got["Body"].read() in (b"z", b"to the end") and client._idle == []


@pytest.mark.parametrize("answer, words", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "5 bytes short"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "within a chunk"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "not a chunk size"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "Content-Length is 'ten'"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "not a header line"),
    (b"ICY 200 OK\r\n\r\n", "not an HTTP/1.x status line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n", "within the headers"),
])
def test_what_is_not_a_whole_answer_is_a_broken_connection(answer, words):
    for key in ({"Range": "bytes=0-9"}, {}):
        client, _ = client_answering(settings(), answer)
        with pytest.raises(s3wire.S3ConnectionError, match=words):
            client.get_object(Bucket="reg", Key="k", **key)["Body"].read()
        assert client._idle == []


@pytest.mark.parametrize("text, when", [
    ("Fri, 01 Mar 2024 10:20:30 GMT", 1709288430),
    ("Friday, 01-Mar-24 10:20:30 GMT", 1709288430),  # RFC 850, obsolete
    ("Fri Mar  1 10:20:30 2024", 1709288430),  # asctime, obsolete
    ("Fri, 01 Mar 2024 25:20:30 GMT", None),
    ("Fri, 01 Foo 2024 10:20:30 GMT", None),
    ("yesterday", None),
    ("", None),
])
def test_http_dates(text, when):
    parsed = s3wire.http_date(text)
    assert (parsed.timestamp() if parsed else None) == when
