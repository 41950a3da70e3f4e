"""SDK namespaces (`config`, `secrets`, `organizations`, ...) backed by the Rust `SdkHost`.

Namespaces are classes of static methods named in lowercase, as in v1, so
`from bifrost import config; await config.get("key")` works. `_i` (the engine
internals) is injected by the bootstrap; this module never imports it.

Every host call names an operation of the Rust table in `src/host.rs` ("ns.fn", made from
`class ns`, which defines `fn`); `tests/sdk_operations.rs` checks that this module, that table and
`bifrost.pyi` name the same operations.
"""

import base64
from typing import Any, Optional

from .models import Form, Record, Role

_i = globals().get("_i")


def _rec(value, cls=Record):
    if isinstance(value, dict):
        return cls(value)
    if isinstance(value, list):
        return [_rec(v, cls) for v in value]
    return value


class config:
    @staticmethod
    async def get(key: str, org_id: Optional[str] = None, default: Any = None) -> Any:
        found = await _i.host("config.get", {"key": key}, org_id)
        if found is None:
            return default
        if found.get("secret"):
            _i.register_secret(found.get("value"))
        return found.get("value")

    @staticmethod
    async def set(key: str, value: Any, org_id: Optional[str] = None) -> None:
        await _i.host("config.set", {"key": key, "value": value}, org_id)

    @staticmethod
    async def list(org_id: Optional[str] = None) -> dict:
        return await _i.host("config.list", {}, org_id)

    @staticmethod
    async def delete(key: str, org_id: Optional[str] = None) -> bool:
        return await _i.host("config.delete", {"key": key}, org_id)


class secrets:
    @staticmethod
    async def get(key: str) -> Optional[str]:
        value = await _i.host("secrets.get", {"key": key})
        if value is not None:
            _i.register_secret(value)
        return value

    @staticmethod
    async def set(key: str, value: str) -> None:
        _i.register_secret(value)
        await _i.host("secrets.set", {"key": key, "value": value})

    @staticmethod
    async def list(org_id: Optional[str] = None) -> list:
        return await _i.host("secrets.list", {}, org_id)

    @staticmethod
    async def delete(key: str) -> bool:
        return await _i.host("secrets.delete", {"key": key})


class organizations:
    @staticmethod
    async def create(name: str, domain: Optional[str] = None, is_active: bool = True):
        _i.require_admin()
        return _rec(await _i.host("organizations.create", {"name": name, "domain": domain, "isActive": is_active}))

    @staticmethod
    async def get(org_id: str):
        return _rec(await _i.host("organizations.get", {"orgId": org_id}))

    @staticmethod
    async def list():
        _i.require_admin()
        return _rec(await _i.host("organizations.list", {}))

    @staticmethod
    async def update(org_id: str, **updates):
        _i.require_admin()
        return _rec(await _i.host("organizations.update", {"orgId": org_id, "updates": updates}))

    @staticmethod
    async def delete(org_id: str) -> bool:
        _i.require_admin()
        return await _i.host("organizations.delete", {"orgId": org_id})


class executions:
    @staticmethod
    async def list(workflow_name=None, status=None, start_date=None, end_date=None, limit: int = 50):
        args = {
            "workflowName": workflow_name,
            "status": status,
            "startDate": start_date,
            "endDate": end_date,
            "limit": limit,
        }
        return _rec(await _i.host("executions.list", args))

    @staticmethod
    async def get(execution_id: str):
        return _rec(await _i.host("executions.get", {"executionId": execution_id}))


class roles:
    @staticmethod
    async def create(name: str, description: str = "", permissions=None):
        args = {"name": name, "description": description, "permissions": permissions}
        return _rec(await _i.host("roles.create", args), Role)

    @staticmethod
    async def get(role_id: str):
        return _rec(await _i.host("roles.get", {"roleId": role_id}), Role)

    @staticmethod
    async def list():
        return _rec(await _i.host("roles.list", {}), Role)

    @staticmethod
    async def update(role_id: str, **updates):
        return _rec(await _i.host("roles.update", {"roleId": role_id, "updates": updates}), Role)

    @staticmethod
    async def delete(role_id: str) -> bool:
        return await _i.host("roles.delete", {"roleId": role_id})

    @staticmethod
    async def list_users(role_id: str) -> list:
        return await _i.host("roles.list_users", {"roleId": role_id})

    @staticmethod
    async def list_forms(role_id: str) -> list:
        return await _i.host("roles.list_forms", {"roleId": role_id})

    @staticmethod
    async def assign_users(role_id: str, user_ids: list) -> None:
        await _i.host("roles.assign_users", {"roleId": role_id, "ids": list(user_ids)})

    @staticmethod
    async def assign_forms(role_id: str, form_ids: list) -> None:
        await _i.host("roles.assign_forms", {"roleId": role_id, "ids": list(form_ids)})


class forms:
    @staticmethod
    async def list():
        return _rec(await _i.host("forms.list", {}), Form)

    @staticmethod
    async def get(form_id: str):
        return _rec(await _i.host("forms.get", {"formId": form_id}), Form)


class files:
    """Synchronous, as in v1: each call blocks the calling thread until the host answers."""

    @staticmethod
    def read(path: str, location: str = "workspace") -> str:
        return files.read_bytes(path, location).decode("utf-8")

    @staticmethod
    def read_bytes(path: str, location: str = "workspace") -> bytes:
        data = _i.host_blocking("files.read", {"path": path, "location": location})
        return base64.b64decode(data)

    @staticmethod
    def write(path: str, content: str, location: str = "workspace") -> None:
        files.write_bytes(path, content.encode("utf-8"), location)

    @staticmethod
    def write_bytes(path: str, content: bytes, location: str = "workspace") -> None:
        data = base64.b64encode(bytes(content)).decode("ascii")
        _i.host_blocking("files.write", {"path": path, "location": location, "content": data})

    @staticmethod
    def list(directory: str = "", location: str = "workspace") -> list:
        return _i.host_blocking("files.list", {"path": directory, "location": location})

    @staticmethod
    def delete(path: str, location: str = "workspace") -> bool:
        return _i.host_blocking("files.delete", {"path": path, "location": location})

    @staticmethod
    def exists(path: str, location: str = "workspace") -> bool:
        return _i.host_blocking("files.exists", {"path": path, "location": location})


def _unsupported(capability):
    def fn(*args, **kwargs):
        raise NotImplementedError(f"{capability} is not supported by this Bifrost engine yet")

    fn.__name__ = capability.rsplit(".", 1)[-1]
    return fn


class oauth:
    get = staticmethod(_unsupported("oauth.get"))
    set_token = staticmethod(_unsupported("oauth.set_token"))
    list_providers = staticmethod(_unsupported("oauth.list_providers"))
    delete_token = staticmethod(_unsupported("oauth.delete_token"))
    refresh_token = staticmethod(_unsupported("oauth.refresh_token"))


class workflows:
    execute = staticmethod(_unsupported("workflows.execute"))
    list = staticmethod(_unsupported("workflows.list"))
    get = staticmethod(_unsupported("workflows.get"))


class storage:
    download = staticmethod(_unsupported("storage.download"))
    upload = staticmethod(_unsupported("storage.upload"))
    generate_url = staticmethod(_unsupported("storage.generate_url"))
    get_metadata = staticmethod(_unsupported("storage.get_metadata"))
    delete = staticmethod(_unsupported("storage.delete"))
