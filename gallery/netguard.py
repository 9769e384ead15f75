"""HTTP for every URL the studio did not choose itself, without letting it reach inside the network.

Reference URLs, callback URLs and the result links that providers hand back may point anywhere: at the
cloud's metadata service, at a database on the private network, at the studio itself. Every URL and every
redirect hop is checked here, and so is every address a name resolves to, at the moment of connecting; the
socket then goes to the address that was checked, so DNS cannot answer differently a second time.

Pure Python over httpx/httpcore: callers pass the policy in.
"""

import functools
import ipaddress
import os
import re
import socket
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from urllib.parse import unquote

import httpcore
import httpx

REDIRECTS = (301, 302, 303, 307, 308)
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)

INVALID = "This is not a valid web address."
LOOPBACK = "This address points at the studio's own machine, which the studio never fetches from."
PRIVATE = "This address points inside a private network, which the studio never fetches from."
METADATA = "This address belongs to a cloud metadata service, which the studio never fetches from."
RESERVED = "This is not a public internet address, so the studio never fetches from it."
TUNNEL = "This address carries another address inside it, which the studio never fetches from."
ONE_WORD = ("This address has a one-word host name, which only means something inside a private network; the studio "
            "only fetches from public names such as images.example.com.")
PRIVATE_NAME = ("This host name is reserved for private networks (names ending in .local, .internal, .lan, .home.arpa "
                "and the like), so the studio never fetches from it.")
OWN_NAME = "This host name is one of the studio machine's own names (in its hosts file), so the studio never fetches from it."

# Names no public DNS answer can be trusted for, refused before any lookup: special-use names (IANA's registry:
# RFC 6761, 6762, 7686, 8375, 9476), the private-use .internal, and the suffixes RFC 6762 (appendix G) lists as
# used on private networks. .test and .example are not here: RFC 6761 asks applications not to treat them as special.
PRIVATE_SUFFIXES = ("local", "internal", "home.arpa", "lan", "intranet", "corp", "home", "private", "localdomain",
                    "invalid", "onion", "alt")
HOSTS_FILE = "/etc/hosts"


@dataclass(frozen=True)
class Policy:
    allow_http: bool = False  # plain http://, for local development only; https is always allowed
    allow_loopback: bool = False  # 127.0.0.0/8 and ::1, for tests and fake upstreams; nothing else non-public
    # False only for addresses the operator configured (an upstream's API behind a private
    # proxy, say): their calls share this module's deadline and byte cap, not its address check.
    check_addresses: bool = True


# Upstream APIs the operator configured (EVOLINK_BASE_URL, …): trusted to be where they are.
CONFIGURED = Policy(allow_http=True, allow_loopback=True, check_addresses=False)


class UnsafeURL(Exception):
    """The URL, or an address it resolves to, is refused; `message` is a sentence for a person."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class FetchError(Exception):
    """The fetch failed for a reason that is not the address: network, time, size or the server's answer."""

    def __init__(self, message, code, status=None, retryable=False):
        super().__init__(message)
        self.message, self.code, self.status, self.retryable = message, code, status, retryable


def _networks(reason, *cidrs):
    return [(ipaddress.ip_network(cidr), reason) for cidr in cidrs]


# The first match gives the reason. Python's is_global alone is not enough (it calls 64:ff9b::7f00:1 and
# 2002:7f00:1:: global), so the ranges are spelled out, and whatever passes must still be is_global.
REFUSED = (
    _networks(METADATA, "169.254.169.254/32", "100.100.100.200/32", "fd00:ec2::254/128")
    + _networks(LOOPBACK, "127.0.0.0/8", "::1/128")
    + _networks(PRIVATE, "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")
    + _networks(PRIVATE, "fc00::/7", "fe80::/10", "fec0::/10")
    + _networks(RESERVED, "0.0.0.0/8", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "198.18.0.0/15")
    + _networks(RESERVED, "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4")
    + _networks(RESERVED, "::/128", "100::/64", "2001:db8::/32", "ff00::/8")
    # NAT64 (both prefixes), Teredo and IPv4-compatible addresses lead somewhere we would have to guess.
    + _networks(TUNNEL, "64:ff9b::/96", "64:ff9b:1::/48", "2001::/32", "::/96")
)


def _refusal(ip, policy):
    """Why `ip` is refused under `policy`, or None."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return INVALID
    if address.version == 6 and address.ipv4_mapped:
        return _refusal(address.ipv4_mapped, policy)  # the socket reaches the IPv4 address itself
    if address.version == 6 and address.sixtofour and _refusal(address.sixtofour, Policy()):
        return TUNNEL
    for network, reason in REFUSED:
        if address in network:
            return None if reason is LOOPBACK and policy.allow_loopback else reason
    if not address.is_global or address.is_multicast:
        return RESERVED
    return None


def check_address(ip, policy):
    """Raises UnsafeURL unless `ip` (a string) is a public address, or loopback that the policy allows."""
    reason = _refusal(ip, policy) if policy.check_addresses else None
    if reason:
        raise UnsafeURL(reason)


# A host name after httpx's IDNA step: ASCII labels, at most one trailing dot. "%" and the like never pass.
HOSTNAME = re.compile(r"(?:[a-z0-9_-]+\.)*[a-z0-9_-]+\.?")


def check_url(url, policy):
    """The URL as httpx.URL if nothing in its spelling is refused; the addresses it resolves to come later."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, UnicodeError):  # UnicodeError: a lone surrogate cannot be quoted
        raise UnsafeURL(INVALID) from None
    if parsed.scheme == "http" and not policy.allow_http:
        raise UnsafeURL("The studio only fetches secure https:// addresses, not plain http:// ones.")
    if not parsed.scheme:
        raise UnsafeURL("A web address must start with https://.")
    if parsed.scheme not in ("http", "https"):
        raise UnsafeURL(f"The studio only fetches web addresses (https://), not {parsed.scheme}: ones.")
    if parsed.userinfo:
        raise UnsafeURL("Addresses with a user name or password in them are refused.")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise UnsafeURL("The port in this address is out of range.")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise UnsafeURL("This address has no host name.")
    if ":" in host:  # an IPv6 literal, which httpx has already validated
        address, _, zone = unquote(host).partition("%")
        check_address(address, policy)
        if zone:
            raise UnsafeURL(PRIVATE)  # a zone id names an interface on the local network
        return parsed
    if not HOSTNAME.fullmatch(host):
        raise UnsafeURL(INVALID)
    name = host.removesuffix(".")
    try:
        # Resolvers read 2130706433, 0x7f.1 and 0177.0.0.1 as IPv4 addresses; so must we, before any lookup.
        ipv4 = socket.inet_ntoa(socket.inet_aton(name))
    except OSError:
        ipv4 = None
    if ipv4:
        check_address(ipv4, policy)
        return parsed.copy_with(host=ipv4)  # one spelling from here on, so nothing reads it differently
    check_name(name, policy)
    # A public name's trailing dot is dropped: one spelling from here on (and the one certificates carry).
    return parsed.copy_with(host=name) if name != host else parsed


def check_name(host, policy):
    """Raises UnsafeURL for a host name that cannot be a public one, before anything looks it up: one-word
    names (`vm`, `localhost`), reserved private suffixes (`.local`, `.internal`, …) and the machine's own names
    from its hosts file, each with or without a trailing dot. IP literals are left to check_address."""
    if not policy.check_addresses:
        return
    name = host.lower().removesuffix(".")
    try:
        ipaddress.ip_address(name)
        return
    except ValueError:
        pass
    if name == "localhost" or name.endswith(".localhost"):
        if policy.allow_loopback:
            return  # it resolves to loopback, which this policy allows (tests, fake upstreams)
        raise UnsafeURL(LOOPBACK)
    if "." not in name:
        raise UnsafeURL(ONE_WORD)
    if any(name == suffix or name.endswith("." + suffix) for suffix in PRIVATE_SUFFIXES):
        raise UnsafeURL(PRIVATE_NAME)
    if name in _hosts_file_names():
        raise UnsafeURL(OWN_NAME)


def _hosts_file_names():
    try:
        status = os.stat(HOSTS_FILE)
    except OSError:
        return frozenset()
    return _read_hosts_file(HOSTS_FILE, status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=4)
def _read_hosts_file(path, mtime_ns, size):
    """The names a hosts file gives addresses to (lower case, no trailing dot); read again when it changes."""
    names = set()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.partition("#")[0].split()
                names.update(field.lower().removesuffix(".") for field in fields[1:])
    except OSError:
        return frozenset()
    return frozenset(names)


def resolve(host, port):
    """The addresses `host` resolves to: the only name lookup in this module (tests replace socket.getaddrinfo)."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in found))


# The deadline of the open_stream call running in this context; every socket operation stops there.
_deadline = ContextVar("netguard_deadline", default=None)


def _within_deadline(timeout, error):
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("The deadline has passed.")
    return left if timeout is None else min(timeout, left)


class GuardedStream(httpcore.NetworkStream):
    """A connection whose reads and writes never wait past the current call's deadline.

    httpx's read timeout is per read, so without this a server dripping a byte at a time could hold a
    call for nearly twice its deadline.
    """

    def __init__(self, stream):
        self._stream = stream

    def read(self, max_bytes, timeout=None):
        return self._stream.read(max_bytes, _within_deadline(timeout, httpcore.ReadTimeout))

    def write(self, buffer, timeout=None):
        self._stream.write(buffer, _within_deadline(timeout, httpcore.WriteTimeout))

    def close(self):
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        # server_hostname is the URL's host (httpcore passes it), so SNI and certificate checks use the name.
        timeout = _within_deadline(timeout, httpcore.ConnectTimeout)
        return GuardedStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info):
        return self._stream.get_extra_info(info)


class GuardedBackend(httpcore.SyncBackend):
    """Resolves each host once, refuses it if any address is not allowed, and connects to that address."""

    def __init__(self, policy):
        self.policy = policy

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        check_name(host, self.policy)  # again here: a client used directly has not been through check_url
        try:
            addresses = resolve(host, port)
        except OSError as e:
            raise httpcore.ConnectError(f"Could not resolve {host}: {e}") from e
        if not addresses:
            raise httpcore.ConnectError(f"Could not resolve {host}.")
        # All of them, not only the one we would use: a name with one private address among public ones
        # is someone testing the guard.
        for address in addresses:
            check_address(address, self.policy)
        error = None
        for address in addresses:
            try:
                # The parent connects to the literal address: its own lookup of a literal never asks DNS.
                stream = super().connect_tcp(
                    address,
                    port,
                    _within_deadline(timeout, httpcore.ConnectTimeout),
                    local_address,
                    socket_options,
                )
                return GuardedStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                error = e
        raise error

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise UnsafeURL("The studio never fetches through a local socket.")


@functools.cache
def _certificate_store():
    # A tenth of a second to load, so once per process; one context serves any number of connections.
    return httpx.create_ssl_context()


def make_client(policy, *, timeout=30.0, headers=None, ssl_context=None):
    """An httpx.Client whose every connection passes the address check; it never follows redirects itself.

    `ssl_context` replaces the default certificate store (tests with their own certificate authority).
    """
    ssl_context = ssl_context or _certificate_store()
    transport = httpx.HTTPTransport(verify=ssl_context)
    # httpx 0.28 (pinned in requirements.txt) cannot hand HTTPTransport a network backend, so its pool is
    # replaced by one built as HTTPTransport.__init__ builds it, plus the guarded backend. Recheck on upgrade:
    # if httpx ever stops using `_pool`, failing here beats connecting unguarded.
    if type(getattr(transport, "_pool", None)) is not httpcore.ConnectionPool:
        raise RuntimeError("httpx.HTTPTransport has changed; gallery.netguard cannot install its guard.")
    transport._pool = httpcore.ConnectionPool(
        ssl_context=ssl_context,
        max_connections=LIMITS.max_connections,
        max_keepalive_connections=LIMITS.max_keepalive_connections,
        keepalive_expiry=LIMITS.keepalive_expiry,
        network_backend=GuardedBackend(policy),
    )
    return httpx.Client(
        transport=transport,
        timeout=timeout,
        # Bodies arrive as sent: a compressed one would be inflated before the byte cap could count it.
        headers={"Accept-Encoding": "identity", **(headers or {})},
        follow_redirects=False,
        trust_env=False,  # an environment proxy would do the connecting, past the address check
        cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),  # nothing carries over between fetches
    )


class Body:
    """The final response's body as an iterator of chunks, with the response's url, status and headers."""

    def __init__(self, response, chunks):
        self.url, self.status_code, self.headers = response.url, response.status_code, response.headers
        self._chunks = chunks

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._chunks)


class _Call:
    """One open_stream call: its policy, its deadline and the bytes it may still read."""

    def __init__(self, policy, max_bytes, deadline_seconds, any_status=False):
        self.policy = policy
        self.any_status = any_status  # every final status is an answer, not an error (API calls)
        self.bytes_left = max_bytes
        self.seconds = deadline_seconds
        self.deadline = time.monotonic() + deadline_seconds

    @contextmanager
    def network_errors(self):
        try:
            yield
        except httpx.TimeoutException as e:
            raise self.timeout() from e
        except httpx.HTTPError as e:
            message = f"The connection failed ({e.__class__.__name__})."
            raise FetchError(message, "network", retryable=True) from e

    def timeout(self):
        message = f"The fetch took longer than the {self.seconds:g} seconds allowed."
        return FetchError(message, "timeout", retryable=True)

    def too_large(self):
        return FetchError("The answer is larger than the studio accepts.", "too_large")

    def take(self, size):
        self.bytes_left -= size
        if self.bytes_left < 0:
            raise self.too_large()
        if time.monotonic() > self.deadline:
            raise self.timeout()

    def check_length(self, response):
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.bytes_left:
            raise self.too_large()

    def send(self, client, method, url, kwargs):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.timeout()
        own = client.timeout
        timeout = httpx.Timeout(
            connect=min(own.connect or left, left),
            read=min(own.read or left, left),
            write=min(own.write or left, left),
            pool=min(own.pool or left, left),
        )
        request = client.build_request(method, url, timeout=timeout, **kwargs)
        return client.send(request, stream=True, follow_redirects=False)

    def follow(self, client, url, method, max_redirects, kwargs):
        """The final response, open and 2xx, after the redirects it took to get there."""
        url = check_url(url, self.policy)
        chain = [str(url.copy_with(fragment=None))]
        while True:
            response = self.send(client, method, url, kwargs)
            redirect = response.status_code in REDIRECTS and "location" in response.headers
            if redirect and not (self.any_status and max_redirects == 0):
                try:
                    url = self.next_hop(response, chain, max_redirects)
                    self.check_length(response)
                    for chunk in response.iter_bytes():  # read, not dropped, so the connection is reused
                        self.take(len(chunk))
                finally:
                    response.close()
                chain.append(str(url.copy_with(fragment=None)))
                method, kwargs = _redirected(method, kwargs, response, url)
                continue
            try:
                if not response.is_success and not self.any_status:
                    status = response.status_code
                    raise FetchError(
                        f"The server answered HTTP {status}.",
                        "http_status",
                        status=status,
                        retryable=status in (408, 429) or status >= 500,
                    )
                self.check_length(response)
            except BaseException:
                response.close()
                raise
            return response

    def next_hop(self, response, chain, max_redirects):
        if max_redirects == 0:
            raise FetchError(
                "The address answered with a redirect, and redirects are not followed here.",
                "redirects_not_followed",
                status=response.status_code,
            )
        try:
            target = response.url.join(response.headers["location"])
        except (httpx.InvalidURL, UnicodeError):
            raise UnsafeURL(INVALID) from None
        target = check_url(target, self.policy)
        if str(target.copy_with(fragment=None)) in chain:
            raise FetchError("The address redirects in a loop.", "redirect_loop")
        if len(chain) > max_redirects:
            raise FetchError(f"The address redirected more than {max_redirects} times.", "too_many_redirects")
        return target

    def chunks(self, response):
        with self.network_errors():
            for chunk in response.iter_bytes():
                self.take(len(chunk))
                yield chunk


def _redirected(method, kwargs, response, target):
    """The method and request arguments for the next hop, as browsers (and httpx) change them."""
    kwargs = dict(kwargs)
    kwargs.pop("params", None)  # the Location carries its own query
    status = response.status_code
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method = "GET"
        for key in ("content", "data", "files", "json"):
            kwargs.pop(key, None)
    source = response.url
    if (source.scheme, source.host, source.port) != (target.scheme, target.host, target.port):
        headers = httpx.Headers(kwargs.get("headers"))
        headers.pop("authorization", None)
        headers.pop("cookie", None)
        kwargs["headers"] = headers
        kwargs.pop("cookies", None)
    return method, kwargs


@contextmanager
def open_stream(
    client, url, policy, *, max_bytes, deadline_seconds, max_redirects=0, method="GET", any_status=False,
    **request_kwargs,
):
    """Yields the body of the final 2xx response as chunks (a Body, which also has .headers and .url).

    Every hop's URL and every connection's address are checked; bytes are capped, and time limited, over the
    whole chain. Raises UnsafeURL for a refused address and FetchError for everything else.
    """
    call = _Call(policy, max_bytes, deadline_seconds, any_status)
    token = _deadline.set(call.deadline)
    try:
        with call.network_errors():
            response = call.follow(client, url, method, max_redirects, request_kwargs)
        try:
            yield Body(response, call.chunks(response))
        finally:
            response.close()
    finally:
        _deadline.reset(token)


def fetch(
    client, url, policy, *, max_bytes, deadline_seconds, max_redirects=0, method="GET", **request_kwargs
):
    """The whole body in memory, and the final response's headers; the same rules as open_stream."""
    with open_stream(
        client,
        url,
        policy,
        max_bytes=max_bytes,
        deadline_seconds=deadline_seconds,
        max_redirects=max_redirects,
        method=method,
        **request_kwargs,
    ) as body:
        return b"".join(body), body.headers


@dataclass(frozen=True)
class Answer:
    status: int
    headers: httpx.Headers
    content: bytes


def request(client, url, policy, *, max_bytes, deadline_seconds, method="GET", **request_kwargs):
    """One API call, whatever status it answers (Answer), under the same deadline and byte cap;
    network trouble and timeouts still raise FetchError. No redirect is followed."""
    with open_stream(
        client, url, policy, max_bytes=max_bytes, deadline_seconds=deadline_seconds, method=method,
        any_status=True, **request_kwargs,
    ) as body:
        return Answer(body.status_code, body.headers, b"".join(body))
