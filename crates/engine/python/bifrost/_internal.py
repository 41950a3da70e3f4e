"""Engine internals: per-execution state, capture, masking, the runner, discovery and the import guard.

Workspace code must not import this module (the import guard blocks it and
reports the attempt). `_native` (the Rust module) and `_bridge` (the engine's
callback object) are injected by the bootstrap before this source runs.

Invariants:
- Every job handed to `_prepare` is completed exactly once (`job.complete`), also
  when an asynchronous interrupt lands in the bookkeeping code.
- Nothing here holds a run's rights: host calls name no run, and Rust grants the
  rights of the run whose task or sync thread is calling (see `native.rs`). The
  `Run` and `Job` objects are bookkeeping; reaching another run's objects does
  not reach its rights.
- A run is in `_running` only while its user code may still be executing on
  the loop thread; the Rust watchdog only targets runs found there.
"""

import asyncio
import base64
import concurrent.futures
import contextvars
import dataclasses
import datetime
import decimal
import enum
import hashlib
import importlib
import importlib.util
import inspect
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import types
import uuid

from . import context as _context_mod
from . import decorators as _decorators

_native = globals().get("_native")
_bridge = globals().get("_bridge")


class ExecutionInterrupted(BaseException):
    """Raised asynchronously into runaway workflow code on timeout or cancellation."""


_current_run = contextvars.ContextVar("bifrost_run", default=None)
_running = {}
_loop_states = {}
_MIN_SECRET_LEN = 4
_REASONS = {1: "Timeout", 2: "Cancelled"}


# ---- per-execution state ---------------------------------------------------------


class Run:
    __slots__ = (
        "job",
        "execution_id",
        "_ctx",
        "logs",
        "seq",
        "secrets",
        "task",
        "loop",
        "sync_ident",
        "out_buf",
        "err_buf",
        "timeout_seconds",
    )

    def __init__(self, job, timeout_seconds):
        self.job = job
        self.execution_id = job.execution_id
        self._ctx = None
        self.logs = []
        self.seq = 0
        self.secrets = None
        self.task = None
        self.loop = None
        self.sync_ident = None
        self.out_buf = ""
        self.err_buf = ""
        self.timeout_seconds = timeout_seconds

    @property
    def context(self):
        # Built on first use: trivial workflows that never touch it skip the cost.
        ctx = self._ctx
        if ctx is None:
            ctx = self._ctx = _make_context(self.job)
        return ctx

    def add(self, level, message, source, data=None):
        self.seq += 1
        line = (self.seq, time.time(), level, message, source, data)
        self.logs.append(line)
        if self.job.has_live:
            # Live lines leave the engine now, so they are masked with the secrets known now;
            # the final lines are masked again with every secret read by the end.
            secrets = sorted(self.secrets, key=len, reverse=True) if self.secrets else None
            self.job.emit_log(line[0], line[1], level, _mask(message, secrets), source, _mask(data, secrets))


def current_run():
    run = _current_run.get()
    if run is None:
        raise RuntimeError(
            "No execution context found. Bifrost SDK functions can only be used inside a workflow execution."
        )
    return run


def get_context():
    return current_run().context


def require_admin():
    if not current_run().context.is_platform_admin:
        raise PermissionError("Platform administrator privileges are required for this operation")


def register_secret(value):
    """Mask `value` as *** in this execution's logs, result and error."""
    run = _current_run.get()
    if run is None or value is None:
        return
    _add_secret(run, value)


def _add_secret(run, value):
    text = value if isinstance(value, str) else str(value)
    if len(text) < _MIN_SECRET_LEN:
        return
    if run.secrets is None:
        run.secrets = set()
    run.secrets.add(text)
    escaped = json.dumps(text, ensure_ascii=False)[1:-1]
    if escaped != text:
        run.secrets.add(escaped)


def _legacy_log(level, message, data):
    run = _current_run.get()
    if run is None:
        _bridge.log(level, "bifrost.context", message)
        return
    payload = None
    if data is not None:
        try:
            payload = to_json(data)
        except Exception:
            payload = json.dumps(repr(data))
    run.add(level, message, "context", payload)


_context_mod._hooks["log"] = _legacy_log


# ---- capture -----------------------------------------------------------------------


class _CaptureHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)

    def handle(self, record):
        run = _current_run.get()
        try:
            msg = record.getMessage()
        except Exception as e:
            msg = f"{record.msg!r} (log formatting failed: {e})"
        if record.exc_info:
            msg = msg + "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if run is None:
            if record.levelno >= logging.WARNING:
                _bridge.log(record.levelname, record.name, msg)
            return True
        run.add(record.levelname, msg, "logging:" + record.name, None)
        return True

    def emit(self, record):
        self.handle(record)


class _StreamProxy(io.TextIOBase):
    """Routes writes to the current execution (by ContextVar) or to the real stream."""

    def __init__(self, real, name, level):
        self._real = real
        self._name = name
        self._level = level

    def write(self, s):
        run = _current_run.get()
        if run is None:
            if self._real is not None:
                return self._real.write(s)
            return len(s)
        if not isinstance(s, str):
            s = str(s)
        attr = "out_buf" if self._name == "stdout" else "err_buf"
        buf = getattr(run, attr) + s
        if "\n" in buf:
            *lines, buf = buf.split("\n")
            for line in lines:
                run.add(self._level, line, self._name, None)
        setattr(run, attr, buf)
        return len(s)

    def flush(self):
        if _current_run.get() is None and self._real is not None:
            self._real.flush()

    def writable(self):
        return True

    def isatty(self):
        return False

    @property
    def encoding(self):
        return getattr(self._real, "encoding", "utf-8")

    def fileno(self):
        if self._real is None:
            raise io.UnsupportedOperation("fileno")
        return self._real.fileno()


_handler = _CaptureHandler()


def _flush_streams(run):
    if run.out_buf:
        run.add("INFO", run.out_buf, "stdout", None)
        run.out_buf = ""
    if run.err_buf:
        run.add("WARNING", run.err_buf, "stderr", None)
        run.err_buf = ""


# ---- JSON conversion ---------------------------------------------------------------


def _json_default(o):
    if isinstance(o, (datetime.datetime, datetime.date, datetime.time)):
        return o.isoformat()
    if isinstance(o, decimal.Decimal):
        if not o.is_finite():
            raise ValueError(f"Decimal {o} is not representable in JSON")
        if o == o.to_integral_value():
            return int(o)
        return float(o)
    if isinstance(o, uuid.UUID):
        return str(o)
    if isinstance(o, (set, frozenset)):
        try:
            return sorted(o)
        except TypeError:
            return list(o)
    if isinstance(o, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(o)).decode("ascii")
    if isinstance(o, enum.Enum):
        return o.value
    if isinstance(o, datetime.timedelta):
        return o.total_seconds()
    if isinstance(o, tuple):
        return list(o)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    dump = getattr(o, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"result contains a value of type '{type(o).__module__}.{type(o).__qualname__}' that cannot be converted to JSON")


def to_json(value):
    return json.dumps(value, default=_json_default, allow_nan=False, ensure_ascii=False)


def _result_type(value):
    if isinstance(value, str):
        s = value.lstrip()
        return "html" if s.startswith("<") and ">" in s else "text"
    return "json"


def _mask(text, secrets):
    if text is None or not secrets:
        return text
    for s in secrets:
        if s in text:
            text = text.replace(s, "***")
    return text


# ---- registry and discovery --------------------------------------------------------


class _Entry:
    """A callable with its precomputed call plan."""

    __slots__ = ("fn", "meta", "is_async", "takes_context", "names", "var_kw", "converters", "file", "line")

    def __init__(self, fn, meta):
        self.fn = fn
        self.meta = meta
        self.is_async = inspect.iscoroutinefunction(fn)
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        self.takes_context = bool(params) and _decorators.is_context_parameter(params[0])
        rest = params[1:] if self.takes_context else params
        self.names = frozenset(
            p.name for p in rest if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        )
        self.var_kw = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params)
        conv = _decorators.converters_for(fn) if meta.parameters_inferred else {}
        self.converters = conv or None
        code = getattr(fn, "__code__", None)
        self.file = code.co_filename if code else ""
        self.line = code.co_firstlineno if code else 0


class _FileState:
    __slots__ = ("path", "root", "module", "key", "digest", "workflows", "providers", "error")

    def __init__(self, path, root):
        self.path = path
        self.root = root
        self.module = None
        self.key = None
        self.digest = None
        self.workflows = []
        self.providers = []
        self.error = None


class Registry:
    def __init__(self):
        self.roots = []
        self.files = {}
        self.workflows = {}
        self.providers = {}
        self.errors = []

    def configure(self, roots):
        self.roots = [os.path.realpath(r) for r in roots]
        for root in reversed(self.roots):
            if root not in sys.path:
                sys.path.insert(0, root)
            pkgs = os.path.join(root, ".packages")
            if os.path.isdir(pkgs) and pkgs not in sys.path:
                sys.path.append(pkgs)
        sys.dont_write_bytecode = True

    def _walk(self):
        found = {}
        for root in self.roots:
            if not os.path.isdir(root):
                continue
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(
                    d for d in dirnames if d != ".packages" and d != "__pycache__" and not d.startswith(".")
                )
                for fn in sorted(filenames):
                    if fn.endswith(".py") and not fn.startswith("_"):
                        path = os.path.join(dirpath, fn)
                        found.setdefault(path, root)
        return found

    def rescan(self, only=None):
        """Re-import new or changed files (all, or only the given paths); drop removed ones."""
        found = self._walk()
        changed, removed = [], []
        if only is not None:
            wanted = {os.path.realpath(p) for p in only}
            candidates = {p: r for p, r in found.items() if os.path.realpath(p) in wanted}
            for path in list(self.files):
                if os.path.realpath(path) in wanted and path not in found:
                    removed.append(path)
        else:
            candidates = found
            removed = [p for p in self.files if p not in found]
        for path in removed:
            state = self.files.pop(path)
            if state.module is not None and sys.modules.get(state.module.__name__) is state.module:
                del sys.modules[state.module.__name__]
        todo = []
        for path, root in candidates.items():
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = (st.st_mtime_ns, st.st_size)
            state = self.files.get(path)
            if state is not None and state.key == key and only is None:
                continue
            try:
                with open(path, "rb") as f:
                    source = f.read()
            except OSError as e:
                source = None
                err = e
            if state is None:
                state = _FileState(path, root)
                self.files[path] = state
            state.key = key
            if source is None:
                state.error = _error_record(path, err)
                state.workflows, state.providers = [], []
                changed.append(path)
                continue
            digest = hashlib.sha256(source).hexdigest()
            if state.digest == digest and state.module is not None and state.error is None:
                continue
            state.digest = digest
            todo.append((state, source))
        if todo:
            importlib.invalidate_caches()
        for state, source in todo:
            self._import(state, source)
            changed.append(state.path)
        if changed or removed:
            self._rebuild()
        return changed, removed

    def _import(self, state, source):
        rel = os.path.relpath(state.path, state.root)
        modname = rel[:-3].replace(os.sep, ".")
        state.workflows, state.providers, state.error = [], [], None
        old = sys.modules.get(modname)
        module = types.ModuleType(modname)
        module.__file__ = state.path
        module.__package__ = modname.rpartition(".")[0]
        module.__spec__ = importlib.util.spec_from_file_location(modname, state.path)
        module.__loader__ = module.__spec__.loader if module.__spec__ else None
        sys.modules[modname] = module
        try:
            code = compile(source, state.path, "exec", dont_inherit=True)
            exec(code, module.__dict__)
        except BaseException as e:
            if sys.modules.get(modname) is module:
                if old is not None:
                    sys.modules[modname] = old
                else:
                    del sys.modules[modname]
            state.module = None
            state.error = _error_record(state.path, e)
            return
        state.module = module
        seen = set()
        for value in list(module.__dict__.values()):
            if not callable(value) or id(value) in seen:
                continue
            if getattr(value, "__module__", None) != modname:
                continue
            seen.add(id(value))
            meta = getattr(value, "_workflow_metadata", None)
            try:
                if meta is not None:
                    state.workflows.append(_Entry(value, meta))
                pmeta = getattr(value, "_data_provider_metadata", None)
                if pmeta is not None:
                    state.providers.append(_Entry(value, pmeta))
            except (TypeError, ValueError) as e:
                state.error = _error_record(state.path, e)

    def _rebuild(self):
        workflows, providers, errors = {}, {}, []
        wf_dups, dp_dups = {}, {}
        for path in sorted(self.files):
            state = self.files[path]
            if state.error is not None:
                errors.append(state.error)
            for entry in state.workflows:
                _index(workflows, wf_dups, entry)
            for entry in state.providers:
                _index(providers, dp_dups, entry)
        for kind, table, dups in (("workflow", workflows, wf_dups), ("data provider", providers, dp_dups)):
            for name, entries in sorted(dups.items()):
                table.pop(name, None)
                places = [f"{e.file}:{e.line}" for e in entries]
                for e in entries:
                    errors.append(
                        {
                            "file": e.file,
                            "line": e.line,
                            "errorType": "DuplicateName",
                            "message": f"{kind} name '{name}' is defined more than once: {', '.join(places)}",
                            "traceback": "",
                        }
                    )
        self.workflows = workflows
        self.providers = providers
        self.errors = errors

    def snapshot(self):
        return json.dumps(
            {
                "workflows": [_entry_dict(e, False) for _, e in sorted(self.workflows.items())],
                "dataProviders": [_entry_dict(e, True) for _, e in sorted(self.providers.items())],
                "errors": self.errors,
            },
            default=_json_default,
        )


def _index(table, dups, entry):
    name = entry.meta.name
    if name in dups:
        dups[name].append(entry)
    elif name in table:
        dups[name] = [table[name], entry]
    else:
        table[name] = entry


def _entry_dict(entry, provider):
    d = entry.meta.to_dict()
    d["module"] = entry.fn.__module__
    d["function"] = entry.fn.__name__
    d["line"] = entry.line
    d["isAsync"] = entry.is_async
    d["sourceFilePath"] = entry.file
    return d


def _error_record(path, exc):
    line = None
    if isinstance(exc, SyntaxError) and exc.filename == path:
        line = exc.lineno
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return {
        "file": path,
        "line": line,
        "errorType": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


registry = Registry()


# ---- the runner ----------------------------------------------------------------------


class _LoopState:
    __slots__ = ("port", "loop", "ident", "pending", "next_id", "stopping")

    def __init__(self, port, loop):
        self.port = port
        self.loop = loop
        self.ident = threading.get_ident()
        self.pending = {}
        self.next_id = 0
        self.stopping = False


class _BoundExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor: blocking calls run on Rust-owned threads that carry the
    rights of the run that submitted them (`run_in_executor(None, ...)`, `asyncio.to_thread`).

    A ThreadPoolExecutor only because asyncio accepts nothing else as a default executor; it
    never starts a thread of its own (`submit` is replaced)."""

    def __init__(self, port):
        super().__init__(max_workers=1, thread_name_prefix="bifrost-unused")
        self._port = port

    def submit(self, fn, /, *args, **kwargs):
        return self._port.submit(fn, args, kwargs or None)

    def shutdown(self, wait=True, *, cancel_futures=False):
        self._port.stop_sync()


def loop_main(port):
    """Body of one engine thread: an asyncio loop fed by the Rust port."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    executor = _BoundExecutor(port)
    loop.set_default_executor(executor)
    # Tasks created by a run's code are registered for that run (see `native.rs`).
    loop.set_task_factory(port.task_factory())
    state = _LoopState(port, loop)
    _loop_states[loop] = state
    loop.add_reader(port.wake_fd(), _on_wake, state)
    port.ready(state.ident, loop)
    while True:
        try:
            loop.run_forever()
        except ExecutionInterrupted:
            # A stray interrupt that landed in loop code; the loop itself is fine.
            continue
        if state.stopping:
            break
    for task in asyncio.all_tasks(loop):
        task.cancel()
    try:
        loop.run_until_complete(asyncio.sleep(0))
    except BaseException:
        pass
    executor.shutdown(wait=False, cancel_futures=True)
    _loop_states.pop(loop, None)
    loop.close()


def _on_wake(state):
    # Jobs are started inside `drain` (Rust creates their tasks); what comes back are replies.
    for msg in state.port.drain():
        kind = msg[0]
        if kind == 1:
            fut = state.pending.pop(msg[1], None)
            if fut is not None and not fut.done():
                fut.set_result(msg[2])
        elif kind == 2:
            state.stopping = True
            state.loop.stop()


def _make_context(job):
    (user_id, email, name, org_id, org_name, org_active, is_admin, is_fk) = job.context_fields()
    org = _context_mod.Organization(id=org_id, name=org_name or "", is_active=org_active) if org_id else None
    cfg = job.config_json
    return _context_mod.ExecutionContext(
        user_id=user_id,
        email=email,
        name=name,
        scope=org_id if org_id else "GLOBAL",
        organization=org,
        is_platform_admin=is_admin,
        is_function_key=is_fk,
        execution_id=job.execution_id,
        _config=json.loads(cfg) if cfg else {},
    )


def _prepare(job):
    """Called by Rust for a new job, on its loop thread: the run and the coroutine (with its
    context) Rust starts as the run's root task, or why there is nothing to run.

    Returns ("run", run, (coroutine, context)) or ("missing", error_type, message)."""
    state = _loop_states[asyncio.get_running_loop()]
    table = registry.providers if job.kind == 1 else registry.workflows
    entry = table.get(job.name)
    if entry is None:
        what = "Data provider" if job.kind == 1 else "Workflow"
        return ("missing", "NotFound", f"{what} '{job.name}' is not registered")
    run = Run(job, job.timeout_seconds)
    if job.has_mask:
        for value in job.mask():
            _add_secret(run, value)
    root = logging.getLogger()
    if _handler not in root.handlers:
        # Workspace code ran logging.basicConfig(force=True) or removed handlers: re-attach capture.
        root.addHandler(_handler)
    run.loop = state.loop
    cv = contextvars.Context()
    cv.run(_current_run.set, run)
    _running[run.execution_id] = run
    return ("run", run, (_task_main(state, job, run, entry), cv))


def _bind(entry, run, inputs):
    if entry.var_kw:
        kwargs = dict(inputs)
    else:
        names = entry.names
        kwargs = {}
        extra = None
        for k, v in inputs.items():
            if k in names:
                kwargs[k] = v
            else:
                if extra is None:
                    extra = {}
                extra[k] = v
        if extra:
            run.context._extra_inputs = extra
    if entry.converters:
        for k, conv in entry.converters.items():
            if k in kwargs and kwargs[k] is not None:
                try:
                    kwargs[k] = conv(kwargs[k])
                except (TypeError, ValueError) as e:
                    raise _decorators_validation_error(f"Invalid value for parameter '{k}': {e}") from None
    if entry.takes_context:
        return (run.context,), kwargs
    return (), kwargs


def _decorators_validation_error(msg):
    from .errors import ValidationError

    return ValidationError(msg)


def _sync_call(run, fn, args, kwargs):
    run.sync_ident = threading.get_ident()
    try:
        return fn(*args, **kwargs)
    finally:
        run.sync_ident = None
        _native.clear_async_exc(threading.get_ident())


def _validate_options(value):
    if not isinstance(value, list):
        raise TypeError(f"Data provider must return a list, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise TypeError(f"Data provider option [{i}] must be a dict with 'label' and 'value', got {type(item).__name__}")
        if not isinstance(item.get("label"), str):
            raise TypeError(f"Data provider option [{i}]: 'label' must be a string")
        if "value" not in item or item["value"] is None:
            raise TypeError(f"Data provider option [{i}]: 'value' is required")
        if "metadata" in item and item["metadata"] is not None and not isinstance(item["metadata"], dict):
            raise TypeError(f"Data provider option [{i}]: 'metadata' must be a dict")


def _describe_error(run, e):
    from .errors import UserError

    is_user = isinstance(e, UserError)
    message = str(e)
    if isinstance(e, TypeError) and "got multiple values for argument" in message:
        message += (
            " (hint: the function's first parameter receives the ExecutionContext only when it is named"
            " 'context' or annotated ExecutionContext)"
        )
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    if is_user:
        run.add("ERROR", message, "engine", None)
    else:
        run.add("ERROR", "An error occurred during execution", "engine", None)
        for line in tb.rstrip().splitlines():
            run.add("TRACEBACK", line, "engine", None)
    return (type(e).__name__, message, tb, is_user)


async def _execute(state, job, run, entry):
    status, result_json, rtype, err = "Success", None, None, None
    try:
        if job.reason():
            raise asyncio.CancelledError()
        args, kwargs = _bind(entry, run, json.loads(job.input_json))
        if entry.is_async:
            value = await entry.fn(*args, **kwargs)
        else:
            cv = contextvars.copy_context()
            value = await state.loop.run_in_executor(None, cv.run, _sync_call, run, entry.fn, args, kwargs)
        if job.kind == 1:
            _validate_options(value)
        try:
            result_json = to_json(value)
        except (TypeError, ValueError) as e:
            raise _ResultError(str(e)) from None
        rtype = _result_type(value)
        if isinstance(value, dict) and value.get("success") is False:
            status = "CompletedWithErrors"
    except (asyncio.CancelledError, ExecutionInterrupted):
        status = _REASONS.get(job.reason(), "Cancelled")
        if status == "Timeout":
            msg = f"Execution timed out after {run.timeout_seconds:g} seconds"
        else:
            msg = "Execution was cancelled"
        run.add("ERROR", msg, "engine", None)
        err = (status, msg, "", False)
        result_json, rtype = None, None
    except BaseException as e:
        status = "Failed"
        err = _describe_error(run, e)
        result_json, rtype = None, None
    finally:
        _running.pop(run.execution_id, None)
        run.sync_ident = None
    return status, result_json, rtype, err


class _ResultError(Exception):
    pass


_ResultError.__name__ = "ResultSerializationError"


async def _task_main(state, job, run, entry):
    t0 = time.perf_counter()
    outcome = None
    for _ in range(3):
        try:
            if outcome is None:
                outcome = await _execute(state, job, run, entry)
            # The watchdog sets the reason before it ever interrupts, so reason 0
            # means no asynchronous exception can be pending for this run.
            if job.reason():
                _native.clear_async_exc(state.ident)
            break
        except BaseException:
            # Only a late asynchronous interrupt can get here; the watchdog no
            # longer targets this run, so the retry is bounded.
            _running.pop(run.execution_id, None)
            if outcome is None:
                reason = _REASONS.get(job.reason(), "Cancelled")
                outcome = (reason, None, None, (reason, f"Execution {reason.lower()}", "", False))
    status, result_json, rtype, err = outcome
    _flush_streams(run)
    logs = run.logs
    if run.secrets:
        secrets = sorted(run.secrets, key=len, reverse=True)
        result_json = _mask(result_json, secrets)
        if err is not None:
            err = (err[0], _mask(err[1], secrets), _mask(err[2], secrets), err[3])
        logs = [(s, t, lv, _mask(m, secrets), src, _mask(d, secrets)) for (s, t, lv, m, src, d) in logs]
    job.complete(status, result_json, rtype, err, logs, (time.perf_counter() - t0) * 1000.0)


def interrupt_target(execution_id):
    """Called by the watchdog (holding the GIL): cancel cooperatively, return what to interrupt.

    Returns None when nothing runs for this id, else (run, loop, task, loop_ident).
    The caller raises ExecutionInterrupted asynchronously in the sync worker
    thread if `run.sync_ident` is set, or in the loop thread if `task` is the
    loop's current task; both checks happen in Rust without running bytecode.
    """
    run = _running.get(execution_id)
    if run is None or run.task is None:
        return None
    state = _loop_states.get(run.loop)
    if state is None:
        return None
    run.loop.call_soon_threadsafe(run.task.cancel)
    return (run, run.loop, run.task, state.ident)


# ---- host bridge ------------------------------------------------------------------------

_HOST_ERRORS = {
    "not_found": LookupError,
    "permission_denied": PermissionError,
    "invalid_input": ValueError,
    "unsupported": NotImplementedError,
}


def _host_result(reply):
    ok, payload = reply
    if ok:
        return json.loads(payload) if payload is not None else None
    kind, message = payload
    raise _HOST_ERRORS.get(kind, RuntimeError)(message)


async def host(op, args, org_id=None):
    """Await a host (Rust `SdkHost`) operation on behalf of the current execution."""
    run = current_run()
    scope_org = _resolve_org(run, org_id)
    payload = json.dumps(args, default=_json_default)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    state = _loop_states.get(loop) if loop is not None else None
    if state is None:
        return _host_result(_bridge.host_call_blocking(op, scope_org, payload))
    state.next_id += 1
    rid = state.next_id
    fut = loop.create_future()
    state.pending[rid] = fut
    state.port.host_call(rid, op, scope_org, payload)
    try:
        reply = await fut
    finally:
        state.pending.pop(rid, None)
    return _host_result(reply)


def host_blocking(op, args, org_id=None):
    run = current_run()
    scope_org = _resolve_org(run, org_id)
    return _host_result(_bridge.host_call_blocking(op, scope_org, json.dumps(args, default=_json_default)))


def _resolve_org(run, org_id):
    ctx = run.context
    if org_id is None or org_id == ctx.org_id:
        return ctx.org_id
    if not ctx.is_platform_admin:
        raise PermissionError(f"Only platform administrators may access another organization ({org_id!r})")
    return None if org_id == "GLOBAL" else org_id


# ---- import guard -----------------------------------------------------------------------

_PROTECTED = ("bifrost._internal", "_bifrost_native")


class _ImportGuard:
    """Blocks workspace code from importing engine internals. A guard against accidents, not a sandbox."""

    def find_spec(self, fullname, path=None, target=None):
        for p in _PROTECTED:
            if fullname == p or fullname.startswith(p + "."):
                break
        else:
            return None
        frame = sys._getframe(1)
        while frame is not None:
            fn = frame.f_code.co_filename
            if "importlib" in fn or fn.startswith("<frozen") or fn == __file__:
                frame = frame.f_back
                continue
            break
        if frame is None:
            return None
        importer = frame.f_code.co_filename
        if _in_workspace(importer):
            _bridge.report_violation(fullname, importer, frame.f_lineno)
            raise ImportError(
                f"bifrost: importing '{fullname}' from workspace code is not allowed ({importer}:{frame.f_lineno}); "
                "use the public `bifrost` API"
            )
        return None


def _in_workspace(path):
    try:
        real = os.path.realpath(path)
    except (TypeError, ValueError):
        return False
    for root in registry.roots:
        if real == root or real.startswith(root + os.sep):
            return True
    return False


# ---- setup --------------------------------------------------------------------------------


def _hide_environment(patterns):
    """Removes the platform's credentials from what workflow code sees as its environment
    (`os.environ`, `os.getenv`, and the environment of processes it starts). The C-level
    environment is left alone: the platform's Rust code may still need a value (a managed
    identity's header is read at every token request). In-process workflow code can still reach
    it natively (ctypes, /proc/self/environ) — the process isolation mode is the boundary."""
    import fnmatch

    data = os.environ._data
    for key in list(os.environ):
        if any(fnmatch.fnmatchcase(key.upper(), p.upper()) for p in patterns):
            data.pop(os.environ.encodekey(key), None)


def setup(roots, hidden_env=()):
    _hide_environment(hidden_env)
    registry.configure(roots)
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, _CaptureHandler):
            root.removeHandler(h)
    root.addHandler(_handler)
    root.setLevel(logging.DEBUG)
    if not isinstance(sys.stdout, _StreamProxy):
        sys.stdout = _StreamProxy(sys.stdout, "stdout", "INFO")
    if not isinstance(sys.stderr, _StreamProxy):
        sys.stderr = _StreamProxy(sys.stderr, "stderr", "WARNING")
    if not any(isinstance(f, _ImportGuard) for f in sys.meta_path):
        sys.meta_path.insert(0, _ImportGuard())
    for name in _PROTECTED:
        sys.modules.pop(name, None)
