"""Write semantics of the API server: create, replace, patch, delete, with every check in order.

Per write: decode → prune unknown fields (fieldValidation Strict/Warn/Ignore) → defaults →
system metadata → status-subresource split → generation → validation (schema, then CEL with
``oldSelf``) → optimistic concurrency (resourceVersion) → store, unless ``dryRun``. A write that
changes nothing is not stored (no new resourceVersion, no watch event), as with etcd.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from runnet.emulator.kube import cel, crds, events, meta, patches, schema
from runnet.emulator.kube.errors import (
    Cause,
    already_exists,
    bad_request,
    conflict,
    forbidden_error,
    invalid,
    not_found,
    required,
    unsupported_media_type,
)
from runnet.emulator.kube.registry import Registry, ResourceType
from runnet.emulator.kube.selectors import Matcher, field_matcher, label_matcher
from runnet.emulator.kube.store import Store

NAMESPACES = ("", "namespaces")
EVENTS = ("", "events")
CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")


@dataclass
class WriteOptions:
    dry_run: bool = False
    validation: str = "Warn"  # fieldValidation: Strict, Warn or Ignore
    subresource: str | None = None
    field_manager: str = ""  # the fieldManager parameter


@dataclass
class Outcome:
    obj: dict[str, Any]
    code: int = 200
    warnings: list[str] = field(default_factory=list)


def served(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the requested version presents it (conversion strategy None: apiVersion only).

    Events are converted between their two APIs (``v1`` and ``events.k8s.io/v1``), which share storage.
    Defaults are applied again on the way out, as the API server does when it reads from storage:
    an object created without a status shows a status schema's defaults (``status: {default: {}}``).
    """
    if rt.key == EVENTS:
        obj = events.convert(obj, rt.api_version)
    out = {
        "apiVersion": rt.api_version,
        "kind": rt.kind,
        **{k: copy.deepcopy(v) for k, v in obj.items() if k not in ("apiVersion", "kind")},
    }
    if rt.schema is not None:
        schema.apply_defaults(out, rt.schema)
    return out


class Objects:
    def __init__(self, registry: Registry, store: Store, *, auto_namespaces: bool = False) -> None:
        self.registry = registry
        self.store = store
        self.auto_namespaces = auto_namespaces
        self.on_crd: Callable[[dict[str, Any], bool], None] = lambda crd, deleted: None

    # -- reads ---------------------------------------------------------------------------------

    def read(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.key, namespace, name)
        if obj is None:
            raise not_found(rt.group, rt.plural, name)
        return served(rt, obj)

    def matcher(self, rt: ResourceType, params: dict[str, str], namespace: str | None, name: str | None) -> Matcher:
        labels = label_matcher(params.get("labelSelector", ""))
        fields = field_matcher(params.get("fieldSelector", ""), rt.supports_field)

        def match(obj: dict[str, Any]) -> bool:
            obj = served(rt, obj)  # selectors name the fields of the requested API (events.k8s.io's differ)
            m = obj.get("metadata", {})
            if (namespace is not None and m.get("namespace") != namespace) or (
                name is not None and m.get("name") != name
            ):
                return False
            return labels(obj) and fields(obj)

        return match

    def select(self, rt: ResourceType, namespace: str | None, match: Matcher) -> list[dict[str, Any]]:
        return [served(rt, o) for o in self.store.list_objects(rt.key, namespace) if match(o)]

    # -- create --------------------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str | None, body: Any, opts: WriteOptions) -> Outcome:
        obj = self._check_body(rt, body, namespace)
        namespace = namespace or (obj["metadata"].get("namespace") if rt.namespaced else None)
        if rt.namespaced and not namespace:
            raise bad_request("the server could not find the requested resource (namespace required)")
        warnings = self._structural(rt, obj, opts)
        meta.init_create(rt, obj, namespace)
        if rt.status_subresource:
            obj.pop("status", None)
        name = obj["metadata"].get("name", "")
        self._validate(rt, obj, None, self._special(rt, obj, None))
        self._check_namespace(rt, namespace, name)  # admission (NamespaceLifecycle) runs after validation
        self._check_crd_live(rt, name)
        if self.store.get(rt.key, namespace, name) is not None:
            raise already_exists(rt.group, rt.plural, name)
        if not opts.dry_run:
            self._ensure_namespace(rt, namespace)
            obj["metadata"]["resourceVersion"] = self.store.next_rv()
            self._put(rt, obj, None)
            if rt.key == CRDS:  # the answer predates the controllers' status: they write it right after
                self._establish(rt, obj)
        return Outcome(served(rt, obj), 201, warnings)

    # -- update / patch ------------------------------------------------------------------------

    def update(self, rt: ResourceType, namespace: str | None, name: str, body: Any, opts: WriteOptions) -> Outcome:
        current = self.read(rt, namespace, name)
        new = self._check_body(rt, body, namespace, name)
        self._precondition(rt, new, current, required=rt.custom)
        return self._write(rt, current, new, opts)

    def patch(
        self, rt: ResourceType, namespace: str | None, name: str, raw: bytes, content_type: str, opts: WriteOptions
    ) -> Outcome:
        ctype = content_type.split(";")[0].strip().lower()
        current = self.store.get(rt.key, namespace, name)
        if ctype == patches.APPLY_PATCH:
            if not opts.field_manager:
                cause = required("fieldManager", "is required for apply patch")
                raise invalid("meta.k8s.io", "PatchOptions", "", [cause])
            applied = _decode(raw, yaml_ok=True)
            gvk = (
                (applied.get("apiVersion") or "", applied.get("kind") or "") if isinstance(applied, dict) else ("", "")
            )
            if not all(gvk):
                group, _, version = gvk[0].rpartition("/")
                raise bad_request(f"invalid object type: {group}/{version}, Kind={gvk[1]}")
            if current is None:
                return self.create(rt, namespace, applied, opts)
            patched = patches.merge_patch(served(rt, current), applied)
        elif current is None:
            raise not_found(rt.group, rt.plural, name)
        elif ctype == patches.JSON_PATCH:
            patched = patches.json_patch(served(rt, current), _decode(raw))
        elif ctype == patches.MERGE_PATCH:
            patched = patches.merge_patch(served(rt, current), _decode(raw))
        elif ctype == patches.STRATEGIC and not rt.custom:
            patched = patches.strategic_merge_patch(served(rt, current), _decode(raw))
        else:
            accepted = [patches.JSON_PATCH, patches.MERGE_PATCH, patches.APPLY_PATCH]
            raise unsupported_media_type(accepted if rt.custom else [*accepted, patches.STRATEGIC])
        new = self._check_body(rt, patched, namespace, name)
        self._precondition(rt, new, current, required=False)
        return self._write(rt, served(rt, current), new, opts)

    def _write(self, rt: ResourceType, current: dict[str, Any], new: dict[str, Any], opts: WriteOptions) -> Outcome:
        warnings = self._structural(rt, new, opts, only="status" if opts.subresource == "status" else "")
        causes: list[Cause] = []
        if opts.subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(current)
            new.pop("status", None)
            if status is not None:
                new["status"] = status
        else:
            causes = meta.carry_system_fields(new, current)
            if rt.custom:  # custom resources get the finalizer check twice, and both errors among the causes
                causes += [c for c in causes if c.field == "metadata.finalizers"]
            if rt.status_subresource:
                new.pop("status", None)
                if "status" in current:
                    new["status"] = current["status"]
            meta.bump_generation(rt, new, current)
        causes += self._special(rt, new, current)
        self._validate(rt, new, current, causes)
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if new == current or opts.dry_run:
            return Outcome(new, 200, warnings)
        new["metadata"]["resourceVersion"] = self.store.next_rv()
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self._remove(rt, new)
        else:
            self._put(rt, new, current)
        return Outcome(served(rt, new), 200, warnings)

    def _precondition(self, rt: ResourceType, new: dict[str, Any], current: dict[str, Any], required: bool) -> None:
        rv = new["metadata"].get("resourceVersion")
        if not rv:
            if required:
                cause = Cause("metadata.resourceVersion", "FieldValueInvalid", "0x0: must be specified for an update")
                raise invalid(rt.group, rt.kind, current["metadata"]["name"], [cause])
            new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        elif rv != current["metadata"]["resourceVersion"]:
            raise conflict(rt.group, rt.plural, current["metadata"]["name"])

    # -- delete --------------------------------------------------------------------------------

    def delete(self, rt: ResourceType, namespace: str | None, name: str, options: Any, opts: WriteOptions) -> Outcome:
        current = self.read(rt, namespace, name)
        self._delete_preconditions(rt, current, options if isinstance(options, dict) else {})
        m = current["metadata"]
        if m.get("deletionTimestamp"):
            return Outcome(current)
        if rt.key == CRDS:
            return self._delete_crd(rt, current, opts)
        if not m.get("finalizers") and rt.key != NAMESPACES:
            if not opts.dry_run:
                self._remove(rt, copy.deepcopy(current))
            details = {"name": name, "group": rt.group, "kind": rt.plural, "uid": m.get("uid")}
            if not rt.group:
                del details["group"]
            return Outcome(
                {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
            )
        new = copy.deepcopy(current)
        new["metadata"].update(deletionTimestamp=meta.now(), deletionGracePeriodSeconds=0)
        if rt.generation:
            new["metadata"]["generation"] = int(m.get("generation") or 1) + 1
        if rt.key == NAMESPACES:
            new.setdefault("status", {})["phase"] = "Terminating"
        if opts.dry_run:
            return Outcome(new)
        new["metadata"]["resourceVersion"] = self.store.next_rv()
        self._put(rt, new, current)
        if rt.key == NAMESPACES:
            self._empty_namespace(name)
            return Outcome(served(rt, self.store.get(rt.key, None, name) or new))
        return Outcome(served(rt, new))

    def _delete_preconditions(self, rt: ResourceType, current: dict[str, Any], options: dict[str, Any]) -> None:
        pre, m = options.get("preconditions") or {}, current["metadata"]
        if pre.get("uid") and pre["uid"] != m.get("uid"):
            why = f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {m.get('uid')}"
            raise conflict(rt.group, rt.plural, m["name"], why)
        if pre.get("resourceVersion") and pre["resourceVersion"] != m.get("resourceVersion"):
            why = (
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {m.get('resourceVersion')}"
            )
            raise conflict(rt.group, rt.plural, m["name"], why)

    # -- shared steps --------------------------------------------------------------------------

    def _check_body(
        self, rt: ResourceType, body: Any, namespace: str | None, name: str | None = None
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request(f"Object 'Kind' is missing in '{json.dumps(body)}'")
        obj = copy.deepcopy(body)
        if rt.custom and not obj.get("kind"):
            raise bad_request(f"Object 'Kind' is missing in '{json.dumps(body)}'")
        if obj.get("kind", rt.kind) != rt.kind:
            raise bad_request(f"the kind in the data ({obj['kind']}) does not match the expected kind ({rt.kind})")
        if obj.get("apiVersion", rt.api_version) != rt.api_version:
            raise bad_request(
                f"the API version in the data ({obj['apiVersion']}) does not match the expected API version "
                f"({rt.api_version})"
            )
        m = obj.setdefault("metadata", {})
        if not isinstance(m, dict):
            raise bad_request("metadata must be an object")
        if rt.namespaced and namespace and m.get("namespace") not in (None, "", namespace):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if name is not None and m.get("name") != name:
            raise bad_request(
                f"the name of the object ({m.get('name', '')}) does not match the name on the URL ({name})"
            )
        return served(rt, obj)

    def _structural(self, rt: ResourceType, obj: dict[str, Any], opts: WriteOptions, only: str = "") -> list[str]:
        """Prune and default; unknown fields fail a Strict request and are warned about otherwise."""
        if rt.schema is None:
            return []
        dropped = schema.prune(obj, rt.schema)
        schema.apply_defaults(obj, rt.schema)
        unknown = [f'unknown field "{path}"' for path in dropped if path.startswith(only)]
        if unknown and opts.validation == "Strict":
            raise bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                "strict decoding error: " + ", ".join(unknown)
            )
        return [] if opts.validation == "Ignore" else unknown

    def _validate(self, rt: ResourceType, new: dict[str, Any], old: dict[str, Any] | None, causes: list[Cause]) -> None:
        causes = meta.name_causes(rt, new["metadata"]) + meta.label_causes(new["metadata"]) + causes
        if rt.schema is not None:
            found = schema.validate(new, rt.schema, old)
            causes += found or cel.check(new, rt.schema, old if old is not None else cel.MISSING)
        if causes:
            raise invalid(rt.group, rt.kind, new["metadata"].get("name", ""), causes)

    def _special(self, rt: ResourceType, new: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
        """What the built-in controllers and strategies of namespaces and CRDs add."""
        if rt.key == NAMESPACES:
            new.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            new.setdefault("status", {}).setdefault("phase", "Active")
            new["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = new["metadata"].get("name")
        if rt.key == ("", "secrets") and not new.get("type"):
            new["type"] = "Opaque"
        if rt.key == EVENTS:
            core = self.registry.storage_type(rt)
            return events.validate(served(core, new), rt.api_version, served(core, old) if old else None)
        if rt.key == CRDS:
            crds.apply_defaults(new)
            causes = crds.check(new)
            if causes:
                return causes
            if old is None:
                crds.initial_status(new)
            else:
                crds.set_status(new, old.get("status"))
            return causes
        return []

    def _put(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        storage = self.registry.storage_type(rt)
        self.store.put(storage, served(storage, obj), served(storage, old) if old else None)
        if rt.key == CRDS:
            self.on_crd(obj, False)

    def _remove(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        storage = self.registry.storage_type(rt)
        self.store.remove(storage, served(storage, obj))
        if rt.key == CRDS:
            self.on_crd(obj, True)
        if rt.custom:
            self._finish_crd(rt.crd_name)
        namespace = obj["metadata"].get("namespace")
        if namespace:
            self._finish_namespace(namespace)

    # -- the CRD controllers: establishing, and clean-up on deletion --------------------------

    def _establish(self, rt: ResourceType, crd: dict[str, Any]) -> None:
        """The naming and establishing controllers: names accepted, Established (a write of their own)."""
        done = copy.deepcopy(crd)
        crds.set_status(done, crd.get("status"))
        done["metadata"]["resourceVersion"] = self.store.next_rv()
        self._put(rt, done, crd)

    def _delete_crd(self, rt: ResourceType, current: dict[str, Any], opts: WriteOptions) -> Outcome:
        """Deleting a CRD marks it and adds the clean-up finalizer; its instances go first, then it does."""
        new = copy.deepcopy(current)
        new["metadata"]["deletionTimestamp"] = meta.now()
        new["metadata"]["finalizers"] = [*(current["metadata"].get("finalizers") or []), crds.CLEANUP_FINALIZER]
        if opts.dry_run:
            return Outcome(new)
        new["metadata"]["resourceVersion"] = self.store.next_rv()
        self._put(rt, new, current)
        name = new["metadata"]["name"]
        terminating = copy.deepcopy(new)
        crds.set_condition(terminating, "Terminating", "True", "InstanceDeletionInProgress",
                           "CustomResource deletion is in progress")  # fmt: skip
        terminating["metadata"]["resourceVersion"] = self.store.next_rv()
        self._put(rt, terminating, new)
        instances = [t for t in self.registry.types.values() if t.crd_name == name]
        for storage in {t.key: self.registry.storage_type(t) for t in instances}.values():
            for obj in self.store.list_objects(storage.key):
                if not obj["metadata"].get("deletionTimestamp"):
                    self.delete(storage, obj["metadata"].get("namespace"), obj["metadata"]["name"], {}, WriteOptions())
        self._finish_crd(name)
        return Outcome(served(rt, new))

    def _finish_crd(self, name: str) -> None:
        """Once a deleted CRD has no instances left: its finalizer goes, and with the last one, the CRD."""
        crd = self.store.get(CRDS, None, name)
        finalizers = (crd or {}).get("metadata", {}).get("finalizers") or []
        if crd is None or not crd["metadata"].get("deletionTimestamp") or crds.CLEANUP_FINALIZER not in finalizers:
            return
        keys = {t.key for t in self.registry.types.values() if t.crd_name == name}
        if any(self.store.count(key) for key in keys):
            return
        rt = self.registry.get(CRDS[0], "v1", CRDS[1])
        assert rt is not None
        done = copy.deepcopy(crd)
        crds.set_condition(done, "Terminating", "False", "InstanceDeletionCompleted", "removed all instances")
        done["metadata"]["finalizers"] = [f for f in finalizers if f != crds.CLEANUP_FINALIZER]
        done["metadata"]["resourceVersion"] = self.store.next_rv()
        if done["metadata"]["finalizers"]:
            self._put(rt, done, crd)
        else:
            self._remove(rt, done)

    def _check_crd_live(self, rt: ResourceType, name: str) -> None:
        """No new instances of a CRD that is being deleted (the API server forbids it in admission)."""
        if not rt.custom:
            return
        crd = self.store.get(CRDS, None, rt.crd_name)
        if crd is not None and crd["metadata"].get("deletionTimestamp"):
            why = "create not allowed while custom resource definition is terminating"
            raise forbidden_error(rt.group, rt.plural, name, why)

    # -- namespaces ----------------------------------------------------------------------------

    def _check_namespace(self, rt: ResourceType, namespace: str | None, name: str) -> None:
        if not rt.namespaced or namespace is None:
            return
        ns = self.store.get(NAMESPACES, None, namespace)
        if ns is None and not self.auto_namespaces:
            raise not_found("", "namespaces", namespace)
        if ns is not None and ns["metadata"].get("deletionTimestamp"):
            why = f"unable to create new content in namespace {namespace} because it is being terminated"
            raise forbidden_error(rt.group, rt.plural, name, why)

    def _ensure_namespace(self, rt: ResourceType, namespace: str | None) -> None:
        if rt.namespaced and namespace and self.store.get(NAMESPACES, None, namespace) is None:
            self.ensure_namespace(namespace)

    def ensure_namespace(self, name: str) -> None:
        ns_type = self.registry.get("", "v1", "namespaces")
        assert ns_type is not None
        if self.store.get(NAMESPACES, None, name) is None:
            self.create(
                ns_type, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, WriteOptions()
            )

    def _namespaced_types(self) -> list[ResourceType]:
        seen: dict[tuple[str, str], ResourceType] = {}
        for rt in self.registry.types.values():
            if rt.namespaced:
                seen.setdefault(rt.key, self.registry.storage_type(rt))
        return list(seen.values())

    def _empty_namespace(self, namespace: str) -> None:
        for rt in self._namespaced_types():
            for obj in self.store.list_objects(rt.key, namespace):
                if not obj["metadata"].get("deletionTimestamp"):
                    self.delete(rt, namespace, obj["metadata"]["name"], {}, WriteOptions())
        self._finish_namespace(namespace)

    def _finish_namespace(self, namespace: str) -> None:
        ns = self.store.get(NAMESPACES, None, namespace)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if any(self.store.count(rt.key, namespace) for rt in self._namespaced_types()):
            return
        ns_type = self.registry.get("", "v1", "namespaces")
        assert ns_type is not None
        self.store.remove(ns_type, ns)


def _decode(raw: bytes, yaml_ok: bool = False) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        if yaml_ok:
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError:
                pass
        raise bad_request(f"error decoding patch: {exc}") from exc
