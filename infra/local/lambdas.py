"""Lambda `Invoke` served in-process: the Chalice function of that name runs in this process.

Step Functions' executor (and any client) calls Lambda over HTTP; this WSGI layer in front of
moto answers `POST /2015-03-31/functions/{name}/invocations` the way Lambda does — the handler's
return value as the payload, or `X-Amz-Function-Error: Unhandled` with `errorType` and
`errorMessage` when it raises — and passes every other request to moto.

Tests inject failures here (`fail`): an invocation that errs before the function runs, or after
it ran to the end (its result lost, as when Lambda times out or the service errs on the way
back) — the case that shows whether a step is safe to run again.
"""
from __future__ import annotations

import json
import re
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import unquote

from chalice.local import LambdaContext
from chalice.utils import to_cfn_resource_name

INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")


class InjectedFailure(Exception):
    """An invocation failed on purpose; Lambda reports `error` as its `errorType`."""

    def __init__(self, error: str, function: str) -> None:
        super().__init__(f"failure injected into {function}")
        self.error = error


@dataclass
class Fault:
    """Fail the next `times` invocations of one function with `error`, after running it or before."""

    error: str
    after_running: bool
    times: int
    fired: int = 0


class LambdaDispatcher:
    """Maps deployed function names (`<app>-<stage>-<function>`, or an ARN) to Chalice handlers."""

    def __init__(self) -> None:
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self._prefix = ""
        self._lock = threading.Lock()
        self._faults: dict[Callable[[Any, Any], Any], list[Fault]] = {}

    def fail(self, function: str, error: str = "Lambda.ServiceException", *, after_running: bool = True,
             times: int = 1) -> Fault:
        """Make the next `times` invocations of `function` (either spelling) fail with `error`;
        `after_running`: the function does all its work first, and only its answer is lost."""
        handler = self._handlers.get(self.function_name(function))
        if handler is None:
            raise LookupError(f"Function not found: {function}")
        fault = Fault(error=error, after_running=after_running, times=times)
        with self._lock:
            self._faults.setdefault(handler, []).append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _fault_for(self, handler: Callable[[Any, Any], Any]) -> Fault | None:
        with self._lock:
            for fault in self._faults.get(handler, []):
                if fault.fired < fault.times:
                    fault.fired += 1
                    return fault
        return None

    def register(self, app: Any, stage: str) -> None:
        with self._lock:
            # `chalice package` names a function's resource in CamelCase (plan_selfcheck →
            # PlanSelfcheck); the local template resolves GetAtt to that spelling.
            handlers = {to_cfn_resource_name(name): handler for name, handler in app.handler_map.items()}
            handlers.update(app.handler_map)
            self._handlers = handlers
            self._prefix = f"{app.app_name}-{stage}-"

    def function_name(self, name_or_arn: str) -> str:
        name = unquote(name_or_arn)
        if name.startswith("arn:"):
            name = name.split(":function:", 1)[-1].split(":", 1)[0]
        return name[len(self._prefix):] if name.startswith(self._prefix) else name

    def deployed_name(self, function: str) -> str:
        return f"{self._prefix}{function}"

    def call(self, name_or_arn: str, event: Any) -> Any:
        """Run the function in this process and return its result; its exceptions propagate."""
        function = self.function_name(name_or_arn)
        handler = self._handlers.get(function)
        if handler is None:
            raise LookupError(f"Function not found: {name_or_arn}")
        context = LambdaContext(function_name=self.deployed_name(function), memory_size=1024, max_runtime_ms=900_000)
        fault = self._fault_for(handler)
        if fault is not None and not fault.after_running:
            raise InjectedFailure(fault.error, function)
        result = handler(event, context)
        if fault is not None:
            raise InjectedFailure(fault.error, function)
        return result

    def invoke(self, name_or_arn: str, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        """Lambda's Invoke API: (HTTP status, headers, body)."""
        if self.function_name(name_or_arn) not in self._handlers:
            body = {"Type": "User", "message": f"Function not found: {name_or_arn}"}
            return 404, {"x-amzn-errortype": "ResourceNotFoundException"}, json.dumps(body).encode()
        try:
            result = self.call(name_or_arn, json.loads(payload) if payload.strip() else {})
        except Exception as exc:  # Lambda reports the error in the payload, not as an HTTP error
            body = {
                "errorMessage": str(exc),
                "errorType": exc.error if isinstance(exc, InjectedFailure) else type(exc).__name__,
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
            return 200, {"X-Amz-Function-Error": "Unhandled"}, json.dumps(body).encode()
        return 200, {}, json.dumps(result).encode()

    def wsgi(self, inner: Callable) -> Callable:
        def app(environ: dict, start_response: Callable):
            match = INVOKE_PATH.match(environ.get("PATH_INFO", ""))
            if environ.get("REQUEST_METHOD") != "POST" or match is None:
                return inner(environ, start_response)
            length = int(environ.get("CONTENT_LENGTH") or 0)
            payload = environ["wsgi.input"].read(length) if length else b""
            status, headers, body = self.invoke(match.group("name"), payload)
            reason = {200: "OK", 404: "Not Found"}.get(status, "Error")
            headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
            start_response(f"{status} {reason}", list(headers.items()))
            return [body]

        return app
