"""The SSRF guard: hostile URLs never reach the network, and real fetches keep their limits.

Nothing here may send a packet beyond loopback. DNS is a dictionary, and every connect goes through a guard
that fails the test, at the attempt and again at teardown, for any other destination.
"""

import ipaddress
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import httpx
import pytest

from gallery.netguard import (
    FetchError,
    Policy,
    UnsafeURL,
    check_address,
    check_url,
    fetch,
    make_client,
    open_stream,
)
from tests.fakes.server import FakeServer, send_bytes

STRICT = Policy()
LOCAL = Policy(allow_http=True, allow_loopback=True)
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
LIMITS = {"max_bytes": 100_000, "deadline_seconds": 5}

OWN = "own machine"
PRIVATE = "private network"
METADATA = "metadata"
NOT_PUBLIC = "not a public"
INSIDE = "another address inside"


class FakeDNS:
    """Registered names resolve to their addresses (a list, or a function returning one), IP literals to
    themselves, and anything else to nothing. Real DNS is never asked."""

    def __init__(self, real_getaddrinfo):
        self.real = real_getaddrinfo
        self.names = {}
        self.lookups = []

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        self.lookups.append(host)
        answer = self.names.get(host, [host])
        answer = answer() if callable(answer) else answer
        try:
            literal = flags | socket.AI_NUMERICHOST
            return [info for ip in answer for info in self.real(ip, port, family, type, proto, literal)]
        except socket.gaierror:
            raise socket.gaierror(socket.EAI_NONAME, f"The fake DNS does not know {host}.") from None


class OutsideLoopback(AssertionError):
    """A connection beyond loopback was attempted: a guard bug, stopped before it became traffic."""


def is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: whoever connects was supposed to resolve it first


class ConnectGuard:
    def __init__(self):
        self.attempts = []

    def check(self, address):
        host, port = address[:2]
        self.attempts.append((host, port))
        if not is_loopback(host):
            raise OutsideLoopback(f"A connection to {host}:{port} was attempted.")

    @property
    def hosts(self):
        return {host for host, _ in self.attempts}


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch):
    dns = FakeDNS(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    monkeypatch.setattr(socket, "getfqdn", lambda name="": name)  # HTTPServer asks for its own name
    return dns


@pytest.fixture(autouse=True)
def connect_guard(monkeypatch):
    guard = ConnectGuard()
    real_create_connection, real_connect = socket.create_connection, socket.socket.connect

    def create_connection(address, *args, **kwargs):
        guard.check(address)
        return real_create_connection(address, *args, **kwargs)

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            guard.check(address)
        return real_connect(sock, address)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket.socket, "connect", connect)
    yield guard
    outside = [(host, port) for host, port in guard.attempts if not is_loopback(host)]
    assert not outside, f"Connections beyond loopback were attempted: {outside}"


# Routes of the local server. The slow ones wait on `release`, which teardown sets, so no test waits for them.


def redirect(location, status=302, body=b""):
    def route(handler):
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return route


def unframed_headers(handler):
    """Headers for a body that ends when the connection closes."""
    handler.send_response(200)
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.close_connection = True


def endless(handler):
    unframed_headers(handler)
    while True:
        handler.wfile.write(b"x" * 65536)


def slow(handler):
    """A few bytes at once, then nothing for longer than any deadline used here."""
    unframed_headers(handler)
    handler.wfile.write(b"x" * 100)
    handler.server.release.wait(5)
    handler.wfile.write(b"x" * 100)


def stalling(handler):
    """A little, a pause shorter than the deadline, a little more, then nothing."""
    unframed_headers(handler)
    handler.wfile.write(b"x" * 100)
    handler.server.release.wait(0.7)
    handler.wfile.write(b"x" * 100)
    handler.server.release.wait(5)


def dripping(handler):
    """A byte every 0.1 s: every read is quick, and the whole never ends."""
    unframed_headers(handler)
    while not handler.server.release.wait(0.1):
        handler.wfile.write(b"x")


def lying(handler):
    """Declares a terabyte, sends four bytes, and keeps the connection open."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(10**12))
    handler.end_headers()
    handler.wfile.write(b"tiny")


ROUTES = {
    "/image": send_bytes(IMAGE),
    "/r1": redirect("/r2", 301),
    "/r2": redirect("/r3", 302),
    "/r3": redirect("/image", 307),
    "/loop-a": redirect("/loop-b"),
    "/loop-b": redirect("/loop-a"),
    "/to-private": redirect("http://10.0.0.1/x"),
    "/to-metadata": redirect("http://metadata.test/latest/meta-data/"),
    "/big1": redirect("/big2", 301, b"r" * 600),
    "/big2": redirect("/final", 302, b"r" * 600),
    "/final": send_bytes(b"f" * 500),
    "/lying": lying,
    "/endless": endless,
    "/slow": slow,
    "/stalling": stalling,
    "/dripping": dripping,
    **{f"/status/{code}": send_bytes(b"no", "text/plain", code) for code in (408, 410, 429, 500, 503)},
}


@contextmanager
def running(fake):
    fake.httpd.release = threading.Event()
    fake.routes.update(ROUTES)
    report = fake.httpd.handle_error

    def handle_error(request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client hanging up early is the point here
            report(request, client_address)

    fake.httpd.handle_error = handle_error
    with fake:
        try:
            yield fake
        finally:
            fake.httpd.release.set()


@pytest.fixture
def server(fake_dns):
    with running(FakeServer()) as fake:
        fake.port = fake.httpd.server_address[1]
        yield fake


def outcome(failed):
    return failed.value.code, failed.value.status, failed.value.retryable


@pytest.fixture
def http():
    with make_client(LOCAL) as client:
        yield client


# Hostile URLs: refused before any connection is attempted.

HOSTILE_NAMES = {
    "loopback.test": ["127.0.0.1"],
    "intranet.test": ["10.0.0.5"],
    "mixed.test": ["93.184.216.34", "10.0.0.5"],
    "metadata.test": ["169.254.169.254"],
    "mapped.test": ["::ffff:10.0.0.5"],
}

HOSTILE = [
    pytest.param("http://example.com/a.png", "plain http", id="plain http"),
    pytest.param("file:///etc/passwd", "not file:", id="file"),
    pytest.param("ftp://example.com/a.png", "not ftp:", id="ftp"),
    pytest.param("gopher://example.com:70/_GET", "not gopher:", id="gopher"),
    pytest.param("data:image/png;base64,AAAA", "not data:", id="data"),
    pytest.param("//example.com/a.png", "must start", id="no scheme"),
    pytest.param("https://user:secret@example.com/a.png", "password", id="credentials"),
    pytest.param("https://example.com\\@10.0.0.1/", "password", id="backslash before @"),
    pytest.param("https://example.com:0/", "port", id="port zero"),
    pytest.param("https://example.com:70000/", "port", id="port too large"),
    pytest.param("https:///etc/passwd", "no host", id="no host"),
    pytest.param("https://%31%32%37.0.0.1/", "not a valid", id="percent-encoded host"),
    pytest.param("https://127.0.0.1/", OWN, id="loopback"),
    pytest.param("https://127.8.9.10/", OWN, id="loopback elsewhere in 127/8"),
    pytest.param("https://127.0.0.1./", OWN, id="loopback with a trailing dot"),
    pytest.param("https://localhost/", OWN, id="localhost"),
    pytest.param("https://localhost./", OWN, id="localhost with a trailing dot"),
    pytest.param("https://LOCALHOST/", OWN, id="localhost in capitals"),
    pytest.param("https://foo.localhost/", OWN, id="under localhost"),
    pytest.param("https://127\u30020\u30020\u30021/", OWN, id="ideographic dots"),
    pytest.param("https://2130706433/", OWN, id="decimal"),
    pytest.param("https://0x7f000001/", OWN, id="hex"),
    pytest.param("https://0x7f.0.0.1/", OWN, id="dotted hex"),
    pytest.param("https://0177.0.0.1/", "not a valid", id="dotted octal"),  # httpx itself refuses it
    pytest.param("https://017700000001/", OWN, id="octal"),
    pytest.param("https://127.1/", OWN, id="short form"),
    pytest.param("https://10.1/", PRIVATE, id="short private"),
    pytest.param("https://0.0.0.0/", NOT_PUBLIC, id="this network"),
    pytest.param("https://10.0.0.1/", PRIVATE, id="10/8"),
    pytest.param("https://172.16.0.1/", PRIVATE, id="172.16/12"),
    pytest.param("https://192.168.1.1/", PRIVATE, id="192.168/16"),
    pytest.param("https://100.64.0.1/", PRIVATE, id="carrier-grade NAT"),
    pytest.param("https://169.254.1.1/", PRIVATE, id="link-local"),
    pytest.param("https://169.254.169.254/latest/meta-data/", METADATA, id="cloud metadata"),
    pytest.param("https://100.100.100.200/", METADATA, id="Alibaba metadata"),
    pytest.param("https://192.0.0.8/", NOT_PUBLIC, id="IETF protocol assignments"),
    pytest.param("https://192.0.2.1/", NOT_PUBLIC, id="documentation"),
    pytest.param("https://198.18.0.1/", NOT_PUBLIC, id="benchmarking"),
    pytest.param("https://240.0.0.1/", NOT_PUBLIC, id="reserved 240/4"),
    pytest.param("https://224.0.0.1/", NOT_PUBLIC, id="multicast"),
    pytest.param("https://255.255.255.255/", NOT_PUBLIC, id="broadcast"),
    pytest.param("https://[::1]/", OWN, id="IPv6 loopback"),
    pytest.param("https://[::]/", NOT_PUBLIC, id="IPv6 unspecified"),
    pytest.param("https://[::ffff:127.0.0.1]/", OWN, id="IPv4-mapped loopback"),
    pytest.param("https://[::ffff:a9fe:a9fe]/", METADATA, id="IPv4-mapped metadata in hex"),
    pytest.param("https://[::7f00:1]/", INSIDE, id="IPv4-compatible"),
    pytest.param("https://[64:ff9b::7f00:1]/", INSIDE, id="NAT64"),
    pytest.param("https://[64:ff9b:1::a00:1]/", INSIDE, id="local NAT64"),
    pytest.param("https://[2002:7f00:1::]/", INSIDE, id="6to4 of loopback"),
    pytest.param("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", INSIDE, id="Teredo"),
    pytest.param("https://[fe80::1]/", PRIVATE, id="IPv6 link-local"),
    pytest.param("https://[fe80::1%25eth0]/", PRIVATE, id="IPv6 link-local with a zone"),
    pytest.param("https://[fc00::1]/", PRIVATE, id="unique local"),
    pytest.param("https://[fd00:ec2::254]/", METADATA, id="AWS IPv6 metadata"),
    pytest.param("https://[fec0::1]/", PRIVATE, id="site-local"),
    pytest.param("https://[ff02::1]/", NOT_PUBLIC, id="IPv6 multicast"),
    pytest.param("https://[2001:db8::1]/", NOT_PUBLIC, id="IPv6 documentation"),
    pytest.param("https://loopback.test/", OWN, id="name for loopback"),
    pytest.param("https://intranet.test/", PRIVATE, id="name for a private address"),
    pytest.param("https://mixed.test/", PRIVATE, id="name for a public and a private address"),
    pytest.param("https://metadata.test/", METADATA, id="name for metadata"),
    pytest.param("https://mapped.test/", PRIVATE, id="name for an IPv4-mapped private address"),
]


@pytest.mark.parametrize(("url", "reason"), HOSTILE)
def test_it_refuses_hostile_urls_without_connecting(url, reason, fake_dns, connect_guard):
    fake_dns.names.update(HOSTILE_NAMES)
    with make_client(STRICT) as client, pytest.raises(UnsafeURL) as refused:
        fetch(client, url, STRICT, **LIMITS)
    assert reason in refused.value.message
    assert connect_guard.attempts == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        pytest.param("http://0.0.0.0/", NOT_PUBLIC, id="0.0.0.0, which Linux connects to loopback"),
        pytest.param("http://10.0.0.1/", PRIVATE, id="10/8"),
        pytest.param("http://169.254.169.254/", METADATA, id="cloud metadata"),
        pytest.param("http://[::ffff:10.0.0.1]/", PRIVATE, id="IPv4-mapped private"),
        pytest.param("http://[2002:7f00:1::]/", INSIDE, id="6to4 of loopback"),
        pytest.param("http://[64:ff9b::7f00:1]/", INSIDE, id="NAT64 of loopback"),
        pytest.param("http://[fe80::1]/", PRIVATE, id="IPv6 link-local"),
        pytest.param("http://mixed.test/", PRIVATE, id="name for a public and a private address"),
    ],
)
def test_it_refuses_everything_but_loopback_when_loopback_is_allowed(url, reason, fake_dns, connect_guard):
    fake_dns.names.update(HOSTILE_NAMES)
    with make_client(LOCAL) as client, pytest.raises(UnsafeURL) as refused:
        fetch(client, url, LOCAL, **LIMITS)
    assert reason in refused.value.message
    assert connect_guard.attempts == []


def test_it_refuses_even_when_the_client_is_used_directly(fake_dns, connect_guard):
    fake_dns.names.update(HOSTILE_NAMES)
    with make_client(STRICT) as client, pytest.raises(UnsafeURL):
        client.get("https://intranet.test/")
    assert connect_guard.attempts == []


# Names that cannot be public: refused before any lookup (issue 21: a DNS query left for https://vm.).

ONE_WORD = "one-word host name"
PRIVATE_NAME = "reserved for private networks"
OWN_NAME = "machine's own names"

PRIVATE_NAMES = [
    pytest.param("https://vm/a.png", ONE_WORD, id="one word"),
    pytest.param("https://vm./a.png", ONE_WORD, id="one word with a trailing dot"),
    pytest.param("https://VM.:8443/a.png", ONE_WORD, id="one word in capitals with a port"),
    pytest.param("https://printer.local/", PRIVATE_NAME, id=".local"),
    pytest.param("https://printer.local./", PRIVATE_NAME, id=".local with a trailing dot"),
    pytest.param("https://db.internal/", PRIVATE_NAME, id=".internal"),
    pytest.param("https://router.home.arpa/", PRIVATE_NAME, id=".home.arpa"),
    pytest.param("https://nas.lan/", PRIVATE_NAME, id=".lan"),
    pytest.param("https://wiki.corp./", PRIVATE_NAME, id=".corp with a trailing dot"),
    pytest.param("https://x.onion/", PRIVATE_NAME, id=".onion"),
    pytest.param("https://a.invalid/", PRIVATE_NAME, id=".invalid"),
    pytest.param("https://localhost.localdomain/", PRIVATE_NAME, id="localhost.localdomain"),
    pytest.param("https://buildbox.example.org/", OWN_NAME, id="in the hosts file"),
    pytest.param("https://buildbox.example.org./", OWN_NAME, id="in the hosts file, with a trailing dot"),
    pytest.param("https://devbox.example.net/", OWN_NAME, id="written with a trailing dot in the hosts file"),
]


@pytest.fixture
def hosts_file(tmp_path, monkeypatch):
    from gallery import netguard

    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost\n10.1.2.3\tbuildbox.example.org buildbox  # the CI box\n"
                    "# 10.9.9.9 commented.example.com\n127.0.1.1 devbox.example.net.\n")
    monkeypatch.setattr(netguard, "HOSTS_FILE", str(path))
    return path


@pytest.mark.parametrize(("url", "reason"), PRIVATE_NAMES)
@pytest.mark.parametrize("policy", [STRICT, LOCAL], ids=["strict", "loopback allowed"])
def test_it_refuses_names_that_cannot_be_public_before_any_lookup(
    url, reason, policy, hosts_file, fake_dns, connect_guard
):
    with make_client(policy) as client:
        with pytest.raises(UnsafeURL) as refused:
            fetch(client, url, policy, **LIMITS)
        assert reason in refused.value.message
        with pytest.raises(UnsafeURL, match=reason):
            client.get(url)  # the client's own connect refuses it too, without asking DNS
    assert fake_dns.lookups == [] and connect_guard.attempts == []


def test_names_not_in_the_hosts_file_and_operator_urls_pass(hosts_file, fake_dns):
    check_url("https://commented.example.com/", STRICT)  # a comment in the hosts file names nothing
    check_url("https://images.test/", STRICT)  # RFC 6761: .test names are not special to applications
    assert check_url("https://localhost./", LOCAL).host == "localhost"  # loopback allowed: so is its name
    # Addresses the operator configured are trusted where they are, one-word names included.
    assert check_url("http://evolink-proxy:8080/v1/", Policy(allow_http=True, check_addresses=False)).host == "evolink-proxy"
    assert fake_dns.lookups == []


def test_a_public_name_loses_its_trailing_dot_and_is_looked_up_once(server, http, fake_dns, connect_guard):
    assert str(check_url("https://example.com./a.png?x=1", STRICT)) == "https://example.com/a.png?x=1"
    fake_dns.names["images.test"] = ["127.0.0.1"]
    body, _ = fetch(http, f"http://images.test.:{server.port}/image", LOCAL, **LIMITS)
    assert body == IMAGE and server.received[-1].headers["host"] == f"images.test:{server.port}"
    names = [host for host in fake_dns.lookups if not is_loopback(host)]  # the connect "resolves" its literal
    assert names == ["images.test"] and connect_guard.hosts == {"127.0.0.1"}


def test_a_redirect_to_a_one_word_name_is_refused_without_a_lookup(server, http, fake_dns, connect_guard):
    server.routes["/to-vm"] = redirect("https://vm./latest/")
    with pytest.raises(UnsafeURL, match=ONE_WORD):
        fetch(http, server.url + "/to-vm", LOCAL, **LIMITS, max_redirects=5)
    assert all(is_loopback(host) for host in fake_dns.lookups) and connect_guard.hosts == {"127.0.0.1"}


PUBLIC = ["93.184.216.34", "2606:4700:4700::1111", "::ffff:93.184.216.34", "2002:5db8:d822::1"]


@pytest.mark.parametrize("ip", PUBLIC)
def test_it_allows_public_addresses(ip):
    check_address(ip, STRICT)


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.5.5.5", "::1", "::ffff:127.0.0.1"])
def test_it_allows_loopback_only_when_the_policy_says_so(ip):
    check_address(ip, LOCAL)
    with pytest.raises(UnsafeURL, match=OWN):
        check_address(ip, STRICT)


def test_it_rewrites_odd_ipv4_spellings_to_the_address_it_checked():
    assert check_url("https://0x5db8d822/a.png", STRICT) == httpx.URL("https://93.184.216.34/a.png")
    assert check_url("https://1572395042:8443/", STRICT) == httpx.URL("https://93.184.216.34:8443/")


def test_it_passes_international_names_on_in_their_ascii_form():
    assert check_url("https://bücher.example/", STRICT).raw_host == b"xn--bcher-kva.example"


# Real fetches from a server on loopback.


def test_it_fetches_an_image(server, http):
    body, headers = fetch(http, server.url + "/image", LOCAL, max_bytes=len(IMAGE), deadline_seconds=5)
    assert body == IMAGE
    assert headers["content-type"] == "image/png"


def test_it_streams_the_body_in_chunks_with_the_final_headers(server, http):
    with open_stream(http, server.url + "/r3", LOCAL, **LIMITS, max_redirects=1) as body:
        assert b"".join(body) == IMAGE
        assert body.url == httpx.URL(server.url + "/image")
        assert body.headers["content-type"] == "image/png"


def test_it_follows_a_chain_of_redirects(server, http):
    body, _ = fetch(http, server.url + "/r1", LOCAL, **LIMITS, max_redirects=5)
    assert body == IMAGE
    assert [r.path for r in server.received] == ["/r1", "/r2", "/r3", "/image"]


def test_it_stops_a_redirect_loop(server, http):
    with pytest.raises(FetchError) as failed:
        fetch(http, server.url + "/loop-a", LOCAL, **LIMITS, max_redirects=5)
    assert outcome(failed) == ("redirect_loop", None, False)


def test_it_stops_after_the_allowed_number_of_redirects(server, http):
    with pytest.raises(FetchError) as failed:
        fetch(http, server.url + "/r1", LOCAL, **LIMITS, max_redirects=2)
    assert outcome(failed) == ("too_many_redirects", None, False)
    assert [r.path for r in server.received] == ["/r1", "/r2", "/r3"]


def test_it_does_not_follow_redirects_unless_asked(server, http):
    with pytest.raises(FetchError) as failed:
        fetch(http, server.url + "/r3", LOCAL, **LIMITS)
    assert outcome(failed) == ("redirects_not_followed", 307, False)


@pytest.mark.parametrize(("path", "reason"), [("/to-private", PRIVATE), ("/to-metadata", METADATA)])
def test_it_refuses_a_redirect_to_an_inside_address_without_connecting_to_it(
    path, reason, server, http, fake_dns, connect_guard
):
    fake_dns.names.update(HOSTILE_NAMES)
    with pytest.raises(UnsafeURL, match=reason):
        fetch(http, server.url + path, LOCAL, **LIMITS, max_redirects=5)
    assert connect_guard.hosts == {"127.0.0.1"}


def test_it_counts_redirect_bodies_against_the_byte_cap(server, http):
    # Two redirects of 600 bytes each, then 500 bytes: 1700 in all.
    with pytest.raises(FetchError) as failed:
        fetch(http, server.url + "/big1", LOCAL, max_bytes=1200, deadline_seconds=5, max_redirects=5)
    assert outcome(failed) == ("too_large", None, False)
    body, _ = fetch(http, server.url + "/big1", LOCAL, max_bytes=1700, deadline_seconds=5, max_redirects=5)
    assert body == b"f" * 500


def test_it_refuses_a_declared_length_over_the_cap_before_reading(server, http):
    started = time.monotonic()
    with pytest.raises(FetchError) as failed:
        fetch(http, server.url + "/lying", LOCAL, max_bytes=1_000_000, deadline_seconds=5)
    assert failed.value.code == "too_large"
    assert time.monotonic() - started < 1  # reading would have waited for bytes that never come


def test_it_cuts_an_endless_body_at_the_cap(server, http):
    received = 0
    url = server.url + "/endless"
    with pytest.raises(FetchError) as failed, open_stream(http, url, LOCAL, **LIMITS) as body:
        for chunk in body:
            received += len(chunk)
    assert failed.value.code == "too_large"
    assert LIMITS["max_bytes"] - 65536 < received <= LIMITS["max_bytes"]  # httpcore reads 64 KiB at most


@pytest.mark.parametrize("path", ["/slow", "/stalling", "/dripping"])
def test_it_gives_up_at_the_deadline(path, server, http):
    # For /stalling, a read timeout that did not shrink with the time left would end at about 1.5 s.
    started = time.monotonic()
    with pytest.raises(FetchError) as failed:
        fetch(http, server.url + path, LOCAL, max_bytes=1_000_000, deadline_seconds=0.8)
    assert outcome(failed) == ("timeout", None, True)
    assert 0.8 <= time.monotonic() - started < 1.2


@pytest.mark.parametrize(
    ("status", "retryable"), [(404, False), (410, False), (408, True), (429, True), (500, True), (503, True)]
)
def test_it_reports_error_statuses_and_whether_to_retry(status, retryable, server, http):
    path = "/missing" if status == 404 else f"/status/{status}"
    with pytest.raises(FetchError) as failed:
        fetch(http, server.url + path, LOCAL, **LIMITS)
    assert outcome(failed) == ("http_status", status, retryable)


def test_it_connects_to_the_address_it_checked_so_dns_cannot_change_its_answer(
    server, fake_dns, connect_guard
):
    def rebinding():
        return ["127.0.0.1"] if fake_dns.lookups.count("rebind.test") == 1 else ["10.0.0.1"]

    fake_dns.names["rebind.test"] = rebinding
    url = f"http://rebind.test:{server.port}/image"
    with make_client(LOCAL) as client:
        body, _ = fetch(client, url, LOCAL, **LIMITS)
    assert body == IMAGE
    assert fake_dns.lookups.count("rebind.test") == 1
    assert connect_guard.hosts == {"127.0.0.1"}
    # A new connection asks again, hears the private answer, and stops there.
    with make_client(LOCAL) as client, pytest.raises(UnsafeURL, match=PRIVATE):
        fetch(client, url, LOCAL, **LIMITS)
    assert connect_guard.hosts == {"127.0.0.1"}


def test_it_sends_the_name_in_the_host_header_while_connecting_to_the_checked_address(
    server, http, fake_dns, connect_guard
):
    fake_dns.names["images.test"] = ["127.0.0.1"]
    fetch(http, f"http://images.test:{server.port}/image", LOCAL, **LIMITS)
    headers = server.received[-1].headers
    assert headers["host"] == f"images.test:{server.port}"
    assert connect_guard.hosts == {"127.0.0.1"}


def test_it_ignores_proxies_from_the_environment(server, http, monkeypatch, connect_guard):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://10.0.0.1:3128")
    with make_client(LOCAL) as client:
        body, _ = fetch(client, server.url + "/image", LOCAL, **LIMITS)
    assert body == IMAGE
    assert connect_guard.hosts == {"127.0.0.1"}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for images.test and nothing else."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-days", "1", "-subj", "/CN=images.test", "-addext", "subjectAltName=DNS:images.test"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return key, cert


def test_it_checks_certificates_and_sends_sni_for_the_name_not_the_address(certificate, fake_dns):
    key, cert = certificate
    names = []
    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(cert, key)
    serving.sni_callback = lambda sock, name, context: names.append(name)
    fake = FakeServer()
    fake.httpd.socket = serving.wrap_socket(fake.httpd.socket, server_side=True)
    fake_dns.names["images.test"] = ["127.0.0.1"]
    trusting = ssl.create_default_context(cafile=str(cert))
    with running(fake), make_client(LOCAL, ssl_context=trusting) as client:
        port = fake.httpd.server_address[1]
        body, _ = fetch(client, f"https://images.test:{port}/image", LOCAL, **LIMITS)
        assert body == IMAGE
        assert names == ["images.test"]
        # The same server by its address: the certificate does not name it, so the handshake fails.
        with pytest.raises(FetchError) as failed:
            fetch(client, f"https://127.0.0.1:{port}/image", LOCAL, **LIMITS)
        assert failed.value.code == "network"


# Redirect rules that need no network at all.


def test_it_refuses_a_redirect_from_https_to_plain_http_unless_http_is_allowed():
    def upstream(request):
        if request.url.scheme == "https":
            return httpx.Response(302, headers={"Location": "http://cdn.example/a.png"})
        return httpx.Response(200, content=IMAGE)

    with httpx.Client(transport=httpx.MockTransport(upstream)) as client:
        with pytest.raises(UnsafeURL, match="plain http"):
            fetch(client, "https://cdn.example/a.png", STRICT, **LIMITS, max_redirects=1)
        body, _ = fetch(client, "https://cdn.example/a.png", LOCAL, **LIMITS, max_redirects=1)
    assert body == IMAGE


@pytest.mark.parametrize(
    ("status", "method", "content"), [(303, "GET", b""), (302, "GET", b""), (307, "POST", b'{"done":true}')]
)
def test_it_changes_the_method_as_browsers_do_and_keeps_credentials_on_their_origin(status, method, content):
    seen = []

    def upstream(request):
        seen.append((request.method, str(request.url), request.headers.get("authorization"), request.content))
        if request.url.host == "hooks.example":
            return httpx.Response(status, headers={"Location": "https://elsewhere.example/done?x=1"})
        return httpx.Response(200, content=b"ok")

    with httpx.Client(transport=httpx.MockTransport(upstream)) as client:
        fetch(
            client,
            "https://hooks.example/callback",
            STRICT,
            **LIMITS,
            max_redirects=1,
            method="POST",
            json={"done": True},
            params={"task": "7"},
            headers={"Authorization": "Bearer secret"},
        )
    assert seen == [
        ("POST", "https://hooks.example/callback?task=7", "Bearer secret", b'{"done":true}'),
        (method, "https://elsewhere.example/done?x=1", None, content),
    ]
