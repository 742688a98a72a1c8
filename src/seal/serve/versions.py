"""Which store version answers a request, and in which adapter slot: the live version and a small LRU.

Used only on the engine thread (:mod:`seal.serve.scheduler`), which owns the model. Slot layout of the bank:
``seal.learning.SLOT`` (0) and ``BACKUP_SLOT`` (1) belong to learning jobs and are never served from; slots
``FIRST_SERVING_SLOT ..`` hold versions being served: the live one (pinned) and recently asked ``seal@N``
(least recently used evicted first). Versions are keyed by the version whose weights they use (a rollback
shares its target's slot); a version with no adapter is the base model (route -1, no slot).

``merge``-strategy stores fold every update into the base weights, so only the live version exists in the
model: ``seal`` (and ``seal@<live>``) are served, ``seal@N`` and ``base`` are refused with a 400.

``routed`` stores keep one adapter per document (or group): each prompt of a request is routed by its question
(the last user message; a completion's prompt) to the adapter of the document it matches, through the router
of the version asked for (:func:`seal.learning_routed.store_router`, cached per version), or to the base model.
The slots then hold those adapters (keyed by the version whose file holds them), least recently used evicted.

Switching: :meth:`ServingSlots.activate` loads a version fully (checksummed) into a free slot and only then
makes it live, all on the engine thread between generation batches, so no batch ever sees a half-loaded or
half-trained adapter::

    slots = ServingSlots(seal, count=3)
    slots.activate(store)                 # the store's current version becomes `seal`
    route, version = slots.route(store, "seal@2", pinned=set())
"""

from __future__ import annotations

from collections import OrderedDict

from seal.engine import Seal
from seal.learning import BACKUP_SLOT, SLOT, load_store_adapter, resolve_version, store_state
from seal.learning_routed import groups_of, store_router
from seal.serve.protocol import APIError
from seal.store import Store, StoreError

FIRST_SERVING_SLOT = max(SLOT, BACKUP_SLOT) + 1
DEFAULT_SERVING_SLOTS = 3
"""The live version + two others (at least 2, so a ``seal@N`` alone always finds a slot)."""


class NoFreeSlot(Exception):
    """Every serving slot is pinned by the batch being assembled: serve this request in a later batch."""


def parse_model(model: str) -> str | int:
    """``seal`` | ``base`` | a version number (``seal@N``); APIError 404 for anything else."""
    if model in ("seal", "base"):
        return model
    head, _, num = model.partition("@")
    if head == "seal" and num.isdigit() and int(num) >= 1:
        return int(num)
    raise APIError(404, f"The model `{model}` does not exist (use `seal`, `seal@N` or `base`; see /v1/models)",
                   "model_not_found")


class ServingSlots:
    """The live version and the versions loaded in serving slots (see the module docstring)."""

    def __init__(self, seal: Seal, count: int = DEFAULT_SERVING_SLOTS) -> None:
        if count < 2:
            raise ValueError("at least two serving slots (the live version and one other)")
        self.seal = seal
        self.free = list(range(FIRST_SERVING_SLOT, FIRST_SERVING_SLOT + count))
        seal.bank.ensure_slots(FIRST_SERVING_SLOT + count)
        self.loaded: OrderedDict[int, int] = OrderedDict()
        """Source version id -> slot, least recently used first."""
        self.live = 0
        """The version served as ``seal`` (0: the store has none; the base model answers)."""
        self.live_source = 0
        self.merge = False
        """The store learns with ``merge``: only the live version is servable."""
        self.strategy = "accumulate"
        self.routers: OrderedDict[int, tuple] = OrderedDict()
        """Routed stores: source version id -> (router, document id -> adapter version), a few kept."""

    # ----------------------------------------------------------------------------- switching
    def activate(self, store: Store) -> int:
        """Make the store's current version live (loaded first, then switched); returns its id."""
        state = store_state(store)
        cur = state.version.id if state.version is not None else 0
        if state.strategy == "merge":
            load_store_adapter(self.seal, store)  # the chain re-merged into the base weights (a no-op if it is)
            self.free = sorted(self.free + list(self.loaded.values()))
            self.loaded.clear()
            # the version lives in the base weights: served through no adapter (route -1, "source" 0)
            self.live, self.live_source, self.merge, self.strategy = cur, 0, True, "merge"
            return cur
        if self.merge:  # was merge (a rollback past the first learn, say): undo the merged weights
            self.seal.bank.restore_base()
        if state.strategy == "routed":  # adapters are loaded per question; the router is built now
            have = len(self.free) + len(self.loaded)
            if have < self.seal.cfg.routing.cache:  # room for routing.cache documents' adapters
                extra = range(FIRST_SERVING_SLOT + have, FIRST_SERVING_SLOT + self.seal.cfg.routing.cache)
                self.seal.bank.ensure_slots(extra[-1] + 1)
                self.free += list(extra)
            self._router(store, state)
            self.live, self.live_source, self.merge, self.strategy = cur, -1, False, "routed"
            return cur
        src = state.source.id if state.source is not None else 0
        self._ensure(store, src, pinned=set(), replacing_live=True)
        self.live, self.live_source, self.merge, self.strategy = cur, src, False, state.strategy
        return cur

    def _ensure(self, store: Store, source: int, pinned: set[int], replacing_live: bool = False) -> int:
        """The slot holding ``source``'s adapter (-1 for the base model), loading it if needed; the live version's
        slot is evicted only when ``replacing_live`` (a new live version is being loaded)."""
        if source == 0:
            return -1
        if source in self.loaded:
            self.loaded.move_to_end(source)
            return self.loaded[source]
        tensors = store.load_adapter(source)  # read and checksummed before any slot is touched
        if tensors is None:
            return -1
        if self.free:
            slot = self.free.pop(0)
        else:
            victim = next((v for v in self.loaded if (replacing_live or v != self.live_source) and v not in pinned),
                          None)
            if victim is None:
                raise NoFreeSlot
            slot = self.loaded.pop(victim)
        try:
            self.seal.bank.load_state_dict(slot, tensors)
        except BaseException:
            self.free.append(slot)
            raise
        self.loaded[source] = slot
        return slot

    # ----------------------------------------------------------------------------- routing
    def check(self, store: Store, model: str) -> None:
        """Refuse, before queueing, what cannot be served (any thread: reads ``store`` and flags only)."""
        want = parse_model(model)
        if isinstance(want, int):
            try:
                store.version(want)
            except StoreError:
                raise APIError(404, f"The model `{model}` does not exist: the store has no version {want}",
                               "model_not_found") from None
        if self.merge and (want == "base" or (isinstance(want, int) and want != self.live)):
            raise APIError(400, f"this store learns with the merge strategy (every update folded into the base "
                                f"weights), so only `seal` (version {self.live}) is served, not `{model}`",
                           "version_not_servable")

    def _router(self, store: Store, state) -> tuple:
        key = state.source.id if state.source is not None else 0
        if key not in self.routers:
            groups = groups_of(state)
            adapter_of = {d: g["adapter"] for g in groups for d in g["documents"]}
            self.routers[key] = (store_router(store, list(adapter_of), self.seal.cfg.routing.threshold), adapter_of)
            while len(self.routers) > 8:
                self.routers.popitem(last=False)
        self.routers.move_to_end(key)
        return self.routers[key]

    def route(self, store: Store, model: str, pinned: set[int], queries: list[str] | None = None
              ) -> tuple[list[int] | int, int, set[int], list | None]:
        """(adapter route, or one per query on a routed store; version answering; source versions used; the
        router's decisions or None) for ``model`` now; raises APIError or NoFreeSlot."""
        want = parse_model(model)
        if self.strategy == "routed" and want != "base":
            return self._route_queries(store, want, pinned, queries or [])
        if want == "seal" or want == self.live:
            return self._ensure(store, self.live_source, pinned), self.live, {self.live_source}, None
        self.check(store, model)
        if want == "base":
            return -1, 0, {0}, None
        _, src = resolve_version(store, want)
        source = src.id if src is not None else 0
        return self._ensure(store, source, pinned), want, {source}, None

    def _route_queries(self, store: Store, want: str | int, pinned: set[int], queries: list[str]):
        version = self.live if want == "seal" else want
        if version != self.live:
            self.check(store, f"seal@{version}")
        state = store_state(store, version) if version else None
        if state is None or state.source is None or state.strategy != "routed":
            return -1, version, {0}, [None] * len(queries)
        router, adapter_of = self._router(store, state)
        decisions = router.route(queries)
        sources = [adapter_of.get(d.key, 0) if d.key is not None else 0 for d in decisions]
        if len(set(sources) - {0}) > len(self.loaded) + len(self.free):
            raise APIError(400, f"the prompts of this request route to {len(set(sources) - {0})} different "
                                f"documents; at most {len(self.loaded) + len(self.free)} per request",
                           "too_many_documents")
        held = set(pinned)
        routes = []
        for src in sources:
            routes.append(self._ensure(store, src, held))
            held.add(src)
        return routes, version, set(sources), decisions


__all__ = ["ServingSlots", "NoFreeSlot", "parse_model", "FIRST_SERVING_SLOT", "DEFAULT_SERVING_SLOTS"]
