"""bus — the Python module of the bus shared-memory message bus, over its C API (bus/bus.h)
with ctypes from the standard library: no build step, nothing outside Debian.

    import bus
    with bus.connect("default", name="worker") as nc:
        sub = nc.subscribe("orders.>")
        nc.publish("orders.eu.new", b'{"id": 1}', headers={"Trace-Id": "42"})
        msg = sub.next_msg(timeout=1.0)
        print(msg.subject, msg.data, msg.headers)

        nc.subscribe("svc.echo", cb=lambda m: m.respond(m.data))
        print(nc.request("svc.echo", b"hi", timeout=1.0).data)

Names follow nats.py where it has them (publish, subscribe(queue=, cb=), request, next_msg,
respond, drain, close), synchronously: a callback runs on the subscription's own thread.
Errors are bus.Error subclasses carrying the C API's status name and one-line message; the
timeout and no-responders ones are also the builtin TimeoutError and bus.NoRespondersError.
The library is libbus.so.0: from $BUS_LIBRARY if set, else found by the dynamic linker.
"""

import atexit
import builtins
import ctypes
import ctypes.util
import os
import threading
import weakref

__all__ = [
    "Broker", "BrokerNotRunningError", "ClosedError", "Connection", "Error", "InvalidSubjectError",
    "Msg", "NoRespondersError", "Subscription", "TimeoutError", "connect", "version",
]


def _load():
    path = os.environ.get("BUS_LIBRARY")
    candidates = [path] if path else ["libbus.so.0", ctypes.util.find_library("bus")]
    errors = []
    for candidate in candidates:
        if not candidate:
            continue
        try:
            return ctypes.CDLL(candidate)  # the ABI this module binds: SONAME libbus.so.0 first
        except OSError as e:
            errors.append(str(e))
    raise ImportError(f"bus: cannot load libbus.so.0 ({'; '.join(errors) or 'not found'}); set BUS_LIBRARY to its path")


_lib = _load()

_p = ctypes.c_void_p
_PP = ctypes.POINTER(ctypes.c_void_p)
_HANDLER = ctypes.CFUNCTYPE(None, _p, _p, _p, _p)


def _fn(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_status_text = _fn("bus_status_text", ctypes.c_char_p, ctypes.c_int)
_last_error = _fn("bus_last_error", ctypes.c_char_p)
_version = _fn("bus_version", ctypes.c_char_p)
_options_create = _fn("bus_options_create", ctypes.c_int, _PP)
_options_set_name = _fn("bus_options_set_name", ctypes.c_int, _p, ctypes.c_char_p)
_options_set_timeout = _fn("bus_options_set_timeout", ctypes.c_int, _p, ctypes.c_int64)
_options_destroy = _fn("bus_options_destroy", None, _p)
_connect = _fn("bus_connection_connect", ctypes.c_int, _PP, ctypes.c_char_p, _p)
_publish_msg = _fn("bus_connection_publish_msg", ctypes.c_int, _p, ctypes.c_char_p, ctypes.c_char_p, _p,
                   ctypes.c_char_p, ctypes.c_size_t)
_request_msg = _fn("bus_connection_request_msg", ctypes.c_int, _PP, _p, ctypes.c_char_p, _p, ctypes.c_char_p,
                   ctypes.c_size_t, ctypes.c_int64)
_subscribe = _fn("bus_connection_subscribe", ctypes.c_int, _PP, _p, ctypes.c_char_p)
_subscribe_cb = _fn("bus_connection_subscribe_cb", ctypes.c_int, _PP, _p, ctypes.c_char_p, _HANDLER, _p)
_queue_subscribe = _fn("bus_connection_queue_subscribe", ctypes.c_int, _PP, _p, ctypes.c_char_p, ctypes.c_char_p)
_queue_subscribe_cb = _fn("bus_connection_queue_subscribe_cb", ctypes.c_int, _PP, _p, ctypes.c_char_p,
                          ctypes.c_char_p, _HANDLER, _p)
_max_payload = _fn("bus_connection_max_payload", ctypes.c_uint64, _p)
_connected = _fn("bus_connection_connected", ctypes.c_int, _p)
_close = _fn("bus_connection_close", ctypes.c_int, _p)
_conn_destroy = _fn("bus_connection_destroy", None, _p)
_next = _fn("bus_subscription_next", ctypes.c_int, _PP, _p, ctypes.c_int64)
_unsubscribe = _fn("bus_subscription_unsubscribe", ctypes.c_int, _p)
_drain = _fn("bus_subscription_drain", ctypes.c_int, _p)
_dropped = _fn("bus_subscription_dropped", ctypes.c_uint64, _p)
_delivered = _fn("bus_subscription_delivered", ctypes.c_uint64, _p)
_sub_destroy = _fn("bus_subscription_destroy", None, _p)
_msg_subject = _fn("bus_message_subject", ctypes.c_char_p, _p)
_msg_reply = _fn("bus_message_reply", ctypes.c_char_p, _p)
_msg_data = _fn("bus_message_data", _p, _p)
_msg_data_len = _fn("bus_message_data_len", ctypes.c_size_t, _p)
_msg_headers = _fn("bus_message_headers", _p, _p)
_msg_respond_msg = _fn("bus_message_respond_msg", ctypes.c_int, _p, _p, ctypes.c_char_p, ctypes.c_size_t)
_msg_destroy = _fn("bus_message_destroy", None, _p)
_hdr_create = _fn("bus_headers_create", ctypes.c_int, _PP)
_hdr_add = _fn("bus_headers_add", ctypes.c_int, _p, ctypes.c_char_p, ctypes.c_char_p)
_hdr_count = _fn("bus_headers_count", ctypes.c_size_t, _p)
_hdr_entry = _fn("bus_headers_entry", ctypes.c_int, _p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_char_p),
                 ctypes.POINTER(ctypes.c_char_p))
_hdr_destroy = _fn("bus_headers_destroy", None, _p)
_broker_start = _fn("bus_broker_start", ctypes.c_int, _PP, ctypes.c_char_p)
_broker_stop = _fn("bus_broker_stop", ctypes.c_int, _p)
_broker_destroy = _fn("bus_broker_destroy", None, _p)

# Threads that have run a callback (the library's dispatch threads), and the connections and
# brokers alive: closed at exit while other threads may still enter the interpreter (in a
# destructor at shutdown a dispatch thread would be stopped inside the library).
_dispatch_threads = set()
_live_handles = weakref.WeakSet()


@atexit.register
def _close_all():
    for h in list(_live_handles):
        try:
            h.close() if isinstance(h, Connection) else h.stop()
        except Error:
            pass


_OK, _INVALID_SUBJECT, _BROKER_NOT_RUNNING, _TIMEOUT, _CLOSED, _NO_RESPONDERS = 0, 2, 4, 11, 12, 15


class Error(Exception):
    """A failed bus call: `status` is the C API's name for it (e.g. "invalid_subject")."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class InvalidSubjectError(Error):
    pass


class BrokerNotRunningError(Error):
    pass


class ClosedError(Error):
    pass


class NoRespondersError(Error):
    pass


class TimeoutError(Error, builtins.TimeoutError):  # noqa: A001 (also the builtin one)
    pass


_ERRORS = {_INVALID_SUBJECT: InvalidSubjectError, _BROKER_NOT_RUNNING: BrokerNotRunningError,
           _TIMEOUT: TimeoutError, _CLOSED: ClosedError, _NO_RESPONDERS: NoRespondersError}


def _check(status):
    if status != _OK:
        text = _status_text(status).decode()
        raise _ERRORS.get(status, Error)(text, _last_error().decode(errors="replace"))


def _bytes(data):
    if data is None:
        return b""
    if isinstance(data, str):
        return data.encode()
    return bytes(data)


def _subject(s, what="subject"):
    if not isinstance(s, str):
        raise TypeError(f"{what} must be a str, not {type(s).__name__}")
    return s.encode()


_MAX_MS = 2**63 - 1  # the C API clamps what nanoseconds cannot hold: as good as forever


def _ms(timeout):
    if timeout is None or not timeout >= 0:  # also refuses NaN
        raise ValueError("timeout must be a number of seconds >= 0")
    if timeout * 1000 >= _MAX_MS:
        return _MAX_MS
    return int(timeout * 1000 + 0.999)


class _Headers:
    """A bus_headers handle built from a dict {key: value or [values]} (None: no handle)."""

    def __init__(self, headers):
        self.handle = None
        if not headers:
            return
        h = _p()
        _check(_hdr_create(ctypes.byref(h)))
        self.handle = h
        for key, value in headers.items():
            for v in value if isinstance(value, (list, tuple)) else [value]:
                try:
                    _check(_hdr_add(h, _subject(key, "header key"), str(v).encode()))
                except Exception:
                    self.close()
                    raise

    def close(self):
        if self.handle:
            _hdr_destroy(self.handle)
            self.handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Msg:
    """A received message: subject, reply (or None), data (bytes) and headers ({key: first value});
    header_values(key) gives all of a key's values. respond() answers a request."""

    __slots__ = ("subject", "reply", "data", "_lines", "_handle")

    def __init__(self, handle):
        self._handle = handle  # kept until the message is collected: respond() needs it
        self.subject = _msg_subject(handle).decode(errors="surrogateescape")
        reply = _msg_reply(handle)
        self.reply = reply.decode(errors="surrogateescape") if reply is not None else None
        self.data = ctypes.string_at(_msg_data(handle), _msg_data_len(handle))
        h = _msg_headers(handle)
        if not h:  # a header block that does not parse: the message still arrives, without them
            h = None
        lines = []
        k, v = ctypes.c_char_p(), ctypes.c_char_p()
        for i in range(_hdr_count(h) if h else 0):
            _check(_hdr_entry(h, i, ctypes.byref(k), ctypes.byref(v)))
            lines.append((k.value.decode(errors="surrogateescape"), v.value.decode(errors="surrogateescape")))
        self._lines = lines

    @property
    def headers(self):
        out = {}
        for key, value in self._lines:
            out.setdefault(key, value)
        return out

    def header_values(self, key):
        return [v for k, v in self._lines if k == key]

    def respond(self, data, headers=None):
        """Publishes `data` to this message's reply subject (Error if it has none)."""
        payload = _bytes(data)
        with _Headers(headers) as h:
            _check(_msg_respond_msg(self._handle, h.handle, payload, len(payload)))

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            _msg_destroy(handle)

    def __repr__(self):
        return f"<bus.Msg subject={self.subject!r} reply={self.reply!r} data={self.data!r}>"


class Subscription:
    """Pull (next_msg, iteration) or, made with cb=, served on its own thread."""

    def __init__(self, connection, handle, subject, queue, callback):
        self._connection = weakref.ref(connection)  # weak: no cycle for the collector to break
        self._handle = handle
        self.subject = subject
        self.queue = queue
        self._callback = callback  # the ctypes thunk: must outlive the subscription

    def next_msg(self, timeout=1.0):
        """The next message, waiting up to `timeout` seconds (bus.TimeoutError if none came)."""
        m = _p()
        _check(_next(ctypes.byref(m), self._live(), _ms(timeout)))
        return Msg(m.value)

    def messages(self, timeout=1.0):
        """Yields messages until none comes for `timeout` seconds or the subscription ends."""
        while True:
            try:
                yield self.next_msg(timeout)
            except (TimeoutError, ClosedError):
                return

    def __iter__(self):
        return self.messages()

    @property
    def dropped(self):
        return _dropped(self._handle) if self._handle else 0

    @property
    def delivered(self):
        return _delivered(self._handle) if self._handle else 0

    def unsubscribe(self):
        if self._handle:
            _check(_unsubscribe(self._handle))

    def drain(self):
        """Lets a callback subscription finish what it has, then unsubscribes."""
        if self._handle:
            _check(_drain(self._handle))

    def _live(self):
        if not self._handle:
            raise ClosedError("closed", "subscription is destroyed")
        return self._handle

    def destroy(self):
        """Unsubscribes and frees it (not from its own callback: use unsubscribe() there)."""
        if self._handle and threading.get_ident() in _dispatch_threads:
            raise Error("invalid_argument", "a callback cannot destroy a subscription or close a connection: "
                        "unsubscribe() in the callback, close from another thread")
        handle, self._handle = self._handle, None
        if handle:
            _sub_destroy(handle)  # joins the dispatch thread: no callback runs after this
        connection = self._connection()
        if connection is not None:
            connection._forget(self)

    def __del__(self):
        self.destroy()


class Connection:
    """An attachment to a bus. Use connect()."""

    def __init__(self, handle, bus_name):
        self._handle = handle
        self.bus_name = bus_name
        self._subs = []  # callback subscriptions (strong)
        self._pulls = weakref.WeakSet()  # pull subscriptions (the caller holds them)
        self._lock = threading.Lock()
        _live_handles.add(self)

    def publish(self, subject, data=b"", reply=None, headers=None):
        payload = _bytes(data)
        with _Headers(headers) as h:
            _check(_publish_msg(self._live(), _subject(subject), _subject(reply, "reply") if reply else None,
                                h.handle, payload, len(payload)))

    def request(self, subject, data=b"", timeout=1.0, headers=None):
        """Sends a request and returns the first reply (bus.TimeoutError, bus.NoRespondersError)."""
        payload = _bytes(data)
        m = _p()
        with _Headers(headers) as h:
            _check(_request_msg(ctypes.byref(m), self._live(), _subject(subject), h.handle, payload, len(payload),
                                _ms(timeout)))
        return Msg(m.value)

    def subscribe(self, subject, queue=None, cb=None):
        """Subscribes to `subject` (`*`, `>` wildcards), in queue group `queue` if given; with
        `cb`, each message is passed to cb(msg) on the subscription's own thread."""
        out = _p()
        pattern = _subject(subject)
        group = _subject(queue, "queue") if queue else None
        thunk = None
        if cb is None:
            status = _queue_subscribe(ctypes.byref(out), self._live(), pattern, group) if group else \
                _subscribe(ctypes.byref(out), self._live(), pattern)
        else:
            def run(nc, sub, msg, closure):
                _dispatch_threads.add(threading.get_ident())
                try:
                    cb(Msg(msg))
                except Exception:  # a callback's error must not cross into C
                    import traceback
                    traceback.print_exc()
            thunk = _HANDLER(run)
            status = _queue_subscribe_cb(ctypes.byref(out), self._live(), pattern, group, thunk, None) if group else \
                _subscribe_cb(ctypes.byref(out), self._live(), pattern, thunk, None)
        _check(status)
        sub = Subscription(self, out.value, subject, queue, thunk)
        with self._lock:
            if cb is not None:
                self._subs.append(sub)  # served until unsubscribed or closed, referenced or not
            else:
                self._pulls.add(sub)  # closed with the connection; freed when dropped
        return sub

    def _forget(self, sub):
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
            self._pulls.discard(sub)

    @property
    def max_payload(self):
        return _max_payload(self._handle) if self._handle else 0

    @property
    def is_connected(self):
        return bool(self._handle) and _connected(self._handle) == 1

    def close(self):
        """Destroys its subscriptions and detaches; later calls raise bus.ClosedError. Not from
        one of its callbacks (the callback's thread cannot wait for itself), nor while other
        threads still use the connection."""
        if self._handle and threading.get_ident() in _dispatch_threads:
            raise Error("invalid_argument", "a callback cannot close its connection: close from another thread")
        with self._lock:
            subs, self._subs = self._subs + list(self._pulls), []
            self._pulls = weakref.WeakSet()
        for s in subs:
            s.destroy()
        handle, self._handle = self._handle, None
        if handle:
            try:
                _check(_close(handle))
            finally:
                _conn_destroy(handle)

    def _live(self):
        if not self._handle:
            raise ClosedError("closed", "connection is closed")
        return self._handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Error:
            pass


def connect(bus_name="default", name=None, timeout=None):
    """Attaches to bus `bus_name` (bus.BrokerNotRunningError when no broker serves it)."""
    options = _p()
    _check(_options_create(ctypes.byref(options)))
    try:
        if name is not None:
            _check(_options_set_name(options, name.encode()))
        if timeout is not None:
            _check(_options_set_timeout(options, max(1, _ms(timeout))))
        handle = _p()
        _check(_connect(ctypes.byref(handle), _subject(bus_name, "bus_name"), options))
    finally:
        _options_destroy(options)
    return Connection(handle.value, bus_name)


class Broker:
    """A broker on a thread of this process (as busd would serve the bus)."""

    def __init__(self, bus_name="default"):
        handle = _p()
        _check(_broker_start(ctypes.byref(handle), _subject(bus_name, "bus_name")))
        self._handle = handle.value
        self.bus_name = bus_name
        _live_handles.add(self)

    def stop(self):
        handle, self._handle = self._handle, None
        if handle:
            try:
                _check(_broker_stop(handle))
            finally:
                _broker_destroy(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __del__(self):
        try:
            self.stop()
        except Error:
            pass


def version():
    return _version().decode()
