"""A fake Qdrant server with programmable faults, for tests that cannot run a real one (no Docker here).

:class:`FaultServer` is a threaded HTTP server on a loopback address (a free port) that speaks the subset
of Qdrant's REST API that qdrant-client's REST transport uses for :class:`search.stores.qdrant.QdrantClientStore`:
collections (list, get, exists, create, update metadata, delete), aliases (list, update), payload indexes,
points (upsert, retrieve, scroll, count, delete, set payload) and queries (query, query/batch, query/groups).
Every call is delegated to a qdrant-client local-mode instance (``QdrantClient(":memory:")``) in the same
process, and its result is returned in Qdrant's envelope ``{"result": ..., "status": "ok", "time": ...}``,
serialized from qdrant-client's own models, so the client parses it with the models it parses a real
server's answers with. Errors use Qdrant's shape ``{"status": {"error": ...}, "time": ...}``: 404 for a
missing collection, 409 for one that already exists, 400 for a bad request.

Faults are scheduled with :meth:`FaultServer.fault`: the next ``times`` requests matching a pattern (after
letting ``skip`` of them through) get an HTTP status (500, 503, 429, 400...), a dropped connection (the
socket closed without an answer, before or after the operation was applied), or a delay (past the
client's timeout). :meth:`FaultServer.stop_accepting` makes the port refuse connections altogether.
An ``api_key`` makes the server answer 401 to requests without that ``api-key`` header; a
``read_only_key`` is accepted for reads and answered 403 on writes, like Qdrant's read-only keys.

Every request is recorded in :attr:`FaultServer.log` (method, path, outcome) so tests can count what the
client sent, e.g. that a 400 was not retried.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, TypeAdapter, ValidationError
from qdrant_client import QdrantClient
from qdrant_client.http import models as m

__all__ = ["FaultServer", "Fault", "Request", "UPSERT", "ANY", "WRITE_METHODS"]

#: Patterns of ``"METHOD /path"`` (no query string) for :meth:`FaultServer.fault`.
ANY = r".*"
UPSERT = r"^PUT /collections/[^/]+/points$"
CREATE = r"^PUT /collections/[^/]+$"
QUERY = r"^POST /collections/[^/]+/points/query(/batch|/groups)?$"
LIST = r"^GET /collections$"
WRITE_METHODS = {"PUT", "PATCH", "DELETE"}
_READ_POSTS = re.compile(r"/points(/scroll|/count|/query(/batch|/groups)?)?$")


@dataclass
class Fault:
    """One scheduled fault: what to do with the matching requests."""

    pattern: str
    action: str  # "status", "drop", "drop_after", "delay", "down"
    status: int = 503
    times: int | None = 1  # None: forever
    skip: int = 0  # let this many matching requests through first
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    seen: int = 0
    fired: int = 0

    def take(self, key: str) -> bool:
        if not re.search(self.pattern, key):
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.fired += 1
        return True


@dataclass(frozen=True)
class Request:
    """A request as the server saw it, and what it did with it."""

    method: str
    path: str
    outcome: str  # "ok", "error 404", "fault 503", "fault drop", "fault delay", "auth 401", ...

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


class _NotFound(Exception):
    pass


class _Conflict(Exception):
    pass


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    return value


def _parse(model: Any, body: Any) -> Any:
    return TypeAdapter(model).validate_python(body or {})


class FaultServer:
    """The fake Qdrant server; use as a context manager or call :meth:`start` and :meth:`close`."""

    def __init__(self, *, api_key: str | None = None, read_only_key: str | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the fault server listens on loopback addresses only, not {host!r}")
        self.api_key = api_key
        self.read_only_key = read_only_key
        self.qdrant = QdrantClient(location=":memory:")
        self.log: list[Request] = []
        self.created: dict[str, Any] = {}  # name -> the CreateCollection request as the server received it
        self.faults: list[Fault] = []
        self.unhandled: list[str] = []
        self._indexes: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()  # the local client is not thread-safe: one operation at a time
        self._fault_lock = threading.Lock()
        self._stopping = threading.Event()
        self._host, self._port = host, port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopper: threading.Thread | None = None
        self._inflight = 0
        self._idle = threading.Condition()
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            ("GET", re.compile(r"^/collections$"), self._list),
            ("POST", re.compile(r"^/collections/aliases$"), self._update_aliases),
            ("GET", re.compile(r"^/aliases$"), self._aliases),
            ("GET", re.compile(r"^/collections/([^/]+)/aliases$"), self._collection_aliases),
            ("GET", re.compile(r"^/collections/([^/]+)/exists$"), self._exists),
            ("GET", re.compile(r"^/collections/([^/]+)$"), self._get),
            ("PUT", re.compile(r"^/collections/([^/]+)$"), self._create),
            ("PATCH", re.compile(r"^/collections/([^/]+)$"), self._update),
            ("DELETE", re.compile(r"^/collections/([^/]+)$"), self._delete),
            ("PUT", re.compile(r"^/collections/([^/]+)/index$"), self._create_index),
            ("PUT", re.compile(r"^/collections/([^/]+)/points$"), self._upsert),
            ("POST", re.compile(r"^/collections/([^/]+)/points$"), self._retrieve),
            ("POST", re.compile(r"^/collections/([^/]+)/points/scroll$"), self._scroll),
            ("POST", re.compile(r"^/collections/([^/]+)/points/count$"), self._count),
            ("POST", re.compile(r"^/collections/([^/]+)/points/delete$"), self._delete_points),
            ("POST", re.compile(r"^/collections/([^/]+)/points/payload$"), self._set_payload),
            ("POST", re.compile(r"^/collections/([^/]+)/points/query$"), self._query),
            ("POST", re.compile(r"^/collections/([^/]+)/points/query/batch$"), self._query_batch),
            ("POST", re.compile(r"^/collections/([^/]+)/points/query/groups$"), self._query_groups),
        ]

    # --- lifetime --------------------------------------------------------------------------------
    def start(self) -> FaultServer:
        server = self
        if self._stopper is not None:  # a "down" fault still closing the old socket
            self._stopper.join()
            self._stopper = None

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _handle(self) -> None:
                server._serve(self)

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        self._stopping.clear()
        self._httpd = ThreadingHTTPServer((self._host, self._port), Handler)
        self._httpd.daemon_threads = True
        self._port = self._httpd.server_address[1]  # keep the port across stop/start
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fault-server-{self._port}", daemon=True)
        self._thread.start()
        return self

    def stop_accepting(self) -> None:
        """Go down: new connections are refused and requests on open ones dropped until :meth:`start`."""
        self._stopping.set()
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def close(self) -> None:
        self.stop_accepting()
        with self._lock:
            self.qdrant.close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    # --- faults ----------------------------------------------------------------------------------
    def fault(self, action: str = "status", *, pattern: str = ANY, status: int = 503, times: int | None = 1,
              skip: int = 0, delay: float = 0.0, headers: dict[str, str] | None = None) -> Fault:
        """Schedule a fault for requests whose ``"METHOD /path"`` matches ``pattern``.

        Args:
            action: ``status`` (answer ``status``), ``drop`` (close the connection without answering, the
                operation not applied), ``drop_after`` (apply the operation, then close without answering),
                ``delay`` (wait ``delay`` seconds, then answer normally), ``down`` (drop this request and
                go down like a crashed server: every connection dropped, new ones refused, until
                :meth:`start` is called again; the data is kept).
            times: how many matching requests get the fault (None: all of them).
            skip: let this many matching requests through before the first fault.
        """
        if action not in ("status", "drop", "drop_after", "delay", "down"):
            raise ValueError(f"unknown fault action {action!r}")
        f = Fault(pattern, action, status=status, times=times, skip=skip, delay=delay, headers=headers or {})
        with self._fault_lock:
            self.faults.append(f)
        return f

    def clear_faults(self) -> None:
        with self._fault_lock:
            self.faults.clear()

    def requests(self, pattern: str = ANY) -> list[Request]:
        """The requests seen whose ``"METHOD /path"`` matches ``pattern``."""
        return [r for r in list(self.log) if re.search(pattern, r.key)]

    def _next_fault(self, key: str) -> Fault | None:
        with self._fault_lock:
            for f in self.faults:
                if f.take(key):
                    return f
        return None

    # --- HTTP ------------------------------------------------------------------------------------
    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being handled (a delayed one may still apply its operation late)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        with self._idle:
            self._inflight += 1
        try:
            self._serve_one(h)
        finally:
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()

    def _serve_one(self, h: BaseHTTPRequestHandler) -> None:
        method = h.command
        path = unquote(urlsplit(h.path).path)
        key = f"{method} {path}"
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        if self._stopping.is_set():  # down: a kept-alive connection of the client sees a dead server
            self.log.append(Request(method, path, "down"))
            return self._drop(h)

        if self.api_key is not None or self.read_only_key is not None:
            given = h.headers.get("api-key")
            write = method in WRITE_METHODS or (method == "POST" and not _READ_POSTS.search(path))
            if given not in (self.api_key, self.read_only_key):
                self.log.append(Request(method, path, "auth 401"))
                return self._send(h, 401, {"status": {"error": "Must provide an API key or an Authorization "
                                                                "bearer token"}})
            if given == self.read_only_key and given != self.api_key and write:
                self.log.append(Request(method, path, "auth 403"))
                return self._send(h, 403, {"status": {"error": "Forbidden: write access denied"}})

        if method == "GET" and path in ("/readyz", "/healthz", "/livez"):
            self.log.append(Request(method, path, "ok"))
            return self._send_raw(h, 200, b"all shards are ready")

        fault = self._next_fault(key)
        if fault is not None and fault.action == "status":
            self.log.append(Request(method, path, f"fault {fault.status}"))
            return self._send(h, fault.status, {"status": {"error": f"injected fault {fault.status}"}},
                              headers=fault.headers)
        if fault is not None and fault.action == "drop":
            self.log.append(Request(method, path, "fault drop"))
            return self._drop(h)
        if fault is not None and fault.action == "down":
            self.log.append(Request(method, path, "fault down"))
            self._stopping.set()
            self._stopper = threading.Thread(target=self.stop_accepting, daemon=True)
            self._stopper.start()
            return self._drop(h)
        if fault is not None and fault.action == "delay":
            self.log.append(Request(method, path, "fault delay"))
            if self._stopping.wait(fault.delay):
                return self._drop(h)

        code, body = self._dispatch(method, path, raw)
        if fault is not None and fault.action == "drop_after":
            self.log.append(Request(method, path, f"fault drop_after ({code})"))
            return self._drop(h)
        if fault is None or fault.action != "delay":
            self.log.append(Request(method, path, "ok" if code == 200 else f"error {code}"))
        self._send(h, code, body)

    def _dispatch(self, method: str, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        for verb, rx, fn in self._routes:
            match = rx.match(path)
            if verb == method and match:
                try:
                    body = json.loads(raw) if raw else {}
                    with self._lock:
                        result = fn(*match.groups(), body=body)
                    return 200, {"result": _dump(result)}
                except _NotFound as exc:
                    return 404, {"status": {"error": f"Not found: {exc}"}}
                except _Conflict as exc:
                    return 409, {"status": {"error": f"Wrong input: {exc}"}}
                except (ValidationError, ValueError, TypeError, KeyError) as exc:
                    msg = str(exc).splitlines()[0]
                    if "not found" in msg.lower():
                        return 404, {"status": {"error": f"Not found: {msg}"}}
                    if "already exists" in msg:
                        return 409, {"status": {"error": f"Wrong input: {msg}"}}
                    return 400, {"status": {"error": f"Bad request: {msg}"}}
        self.unhandled.append(f"{method} {path}")
        return 404, {"status": {"error": f"the fault server does not implement {method} {path}"}}

    def _send(self, h: BaseHTTPRequestHandler, code: int, body: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        if "status" not in body:
            body["status"] = "ok"
        body["time"] = 0.0001
        data = json.dumps(body).encode()
        try:
            h.send_response(code)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:  # the client gave up (timeout) and closed its end
            h.close_connection = True

    @staticmethod
    def _send_raw(h: BaseHTTPRequestHandler, code: int, data: bytes) -> None:
        h.send_response(code)
        h.send_header("Content-Type", "text/plain")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    @staticmethod
    def _drop(h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # --- Qdrant operations, on the local-mode client -----------------------------------------------
    def _resolve(self, name: str) -> str:
        aliases = {a.alias_name: a.collection_name for a in self.qdrant.get_aliases().aliases}
        real = aliases.get(name, name)
        if not self.qdrant.collection_exists(real):
            raise _NotFound(f"Collection `{name}` doesn't exist!")
        return real

    def _list(self, body: Any) -> Any:
        return self.qdrant.get_collections()

    def _aliases(self, body: Any) -> Any:
        return self.qdrant.get_aliases()

    def _collection_aliases(self, name: str, body: Any) -> Any:
        return self.qdrant.get_collection_aliases(self._resolve(name))

    def _update_aliases(self, body: Any) -> Any:
        ops = _parse(m.ChangeAliasesOperation, body).actions
        for op in ops:  # Qdrant checks every operation before applying any
            if isinstance(op, m.CreateAliasOperation):
                self._resolve(op.create_alias.collection_name)
            elif isinstance(op, m.DeleteAliasOperation):
                known = {a.alias_name for a in self.qdrant.get_aliases().aliases}
                if op.delete_alias.alias_name not in known:
                    raise _NotFound(f"Alias {op.delete_alias.alias_name} does not exists!")
        return self.qdrant.update_collection_aliases(change_aliases_operations=ops)

    def _exists(self, name: str, body: Any) -> Any:
        return m.CollectionExistence(exists=self.qdrant.collection_exists(name))

    def _get(self, name: str, body: Any) -> Any:
        real = self._resolve(name)
        info = self.qdrant.get_collection(real)
        count = self.qdrant.count(real, exact=True).count
        info.payload_schema = {
            f: m.PayloadIndexInfo(data_type=m.PayloadSchemaType(t), points=count)
            for f, t in self._indexes.get(real, {}).items()
        }
        return info

    def _create(self, name: str, body: Any) -> Any:
        req = _parse(m.CreateCollection, body)
        if self.qdrant.collection_exists(name):
            raise _Conflict(f"Collection `{name}` already exists!")
        self.created[name] = req
        return self.qdrant.create_collection(name, vectors_config=req.vectors, sparse_vectors_config=req.sparse_vectors,
                                             metadata=req.metadata)

    def _update(self, name: str, body: Any) -> Any:
        req = _parse(m.UpdateCollection, body)
        return self.qdrant.update_collection(self._resolve(name), metadata=req.metadata)

    def _delete(self, name: str, body: Any) -> Any:
        self._indexes.pop(name, None)
        return self.qdrant.delete_collection(name)

    def _create_index(self, name: str, body: Any) -> Any:
        req = _parse(m.CreateFieldIndex, body)
        real = self._resolve(name)
        schema = req.field_schema
        self._indexes.setdefault(real, {})[req.field_name] = str(getattr(schema, "value", schema))
        return m.UpdateResult(operation_id=0, status=m.UpdateStatus.COMPLETED)

    def _upsert(self, name: str, body: Any) -> Any:
        req = _parse(m.PointInsertOperations, body)
        if not isinstance(req, m.PointsList):
            raise ValueError("the fault server takes points lists only")
        return self.qdrant.upsert(self._resolve(name), points=req.points)

    def _retrieve(self, name: str, body: Any) -> Any:
        req = _parse(m.PointRequest, body)
        return self.qdrant.retrieve(self._resolve(name), ids=req.ids, with_payload=req.with_payload,
                                    with_vectors=req.with_vector)

    def _scroll(self, name: str, body: Any) -> Any:
        req = _parse(m.ScrollRequest, body)
        points, nxt = self.qdrant.scroll(self._resolve(name), scroll_filter=req.filter, limit=req.limit or 10,
                                         offset=req.offset, with_payload=req.with_payload,
                                         with_vectors=req.with_vector)
        return m.ScrollResult(points=points, next_page_offset=nxt)

    def _count(self, name: str, body: Any) -> Any:
        req = _parse(m.CountRequest, body)
        return self.qdrant.count(self._resolve(name), count_filter=req.filter, exact=True)

    def _delete_points(self, name: str, body: Any) -> Any:
        sel = _parse(m.PointsSelector, body)
        return self.qdrant.delete(self._resolve(name), points_selector=sel)

    def _set_payload(self, name: str, body: Any) -> Any:
        req = _parse(m.SetPayload, body)
        return self.qdrant.set_payload(self._resolve(name), payload=req.payload, points=req.points or [],
                                       key=req.key)

    def _query(self, name: str, body: Any) -> Any:
        req = _parse(m.QueryRequest, body).model_copy(update={"params": None})  # local mode searches exactly
        return self.qdrant.query_batch_points(self._resolve(name), requests=[req])[0]

    def _query_batch(self, name: str, body: Any) -> Any:
        req = _parse(m.QueryRequestBatch, body)
        searches = [r.model_copy(update={"params": None}) for r in req.searches]  # local mode searches exactly
        return self.qdrant.query_batch_points(self._resolve(name), requests=searches)

    def _query_groups(self, name: str, body: Any) -> Any:
        req = _parse(m.QueryGroupsRequest, body)
        return self.qdrant.query_points_groups(
            self._resolve(name), group_by=req.group_by, query=req.query, query_filter=req.filter,
            limit=req.limit or 10, group_size=req.group_size or 3, with_payload=req.with_payload,
            with_vectors=req.with_vector, score_threshold=req.score_threshold,
        )


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


if __name__ == "__main__":  # python -m tests.fault_server [PORT]: serve without faults, e.g. for the store contract
    import sys

    srv = FaultServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print(srv.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.close()
