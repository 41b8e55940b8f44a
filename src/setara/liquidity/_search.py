"""Mutable search state shared by the heuristics: exact Python-int slacks plus debtor queues.

A selection is kept feasible-or-repairing and structurally valid for its lanes (see _lp.Lanes):
in every lane, the groups (lane, level) below the lowest non-full group are full and the groups
above it are empty. With lane mode "none" every debtor has one group and nothing is constrained.
"""

from __future__ import annotations

import heapq
import time
from bisect import bisect_left, bisect_right, insort

import numpy as np

from ._lp import Lanes
from ._model import BoolArray, Problem

__all__ = ["Deadline", "State"]

_SCAN_MAX = 48  # entries looked at per query before giving up; keeps each step O(log n)-ish


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.t0 = time.perf_counter()
        self.end = self.t0 + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()

    def passed(self) -> bool:
        return time.perf_counter() >= self.end

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def sub(self, share: float) -> Deadline:
        """A deadline `share` of the way from now to this one."""
        return Deadline(max(self.left(), 0.0) * share)


class State:
    def __init__(self, p: Problem, lanes: Lanes, selected: BoolArray, mode: str = "none") -> None:
        self.p = p
        self.lanes_mode = mode
        self.lanes = lanes
        sel = selected.copy()
        # items with no debit cost nothing and always settle
        has_neg = np.zeros(p.n, dtype=bool)
        has_neg[p.eff_item[p.eff_delta < 0]] = True
        self.free_items = np.flatnonzero(~has_neg)
        sel[self.free_items] = True
        self.sel: list[bool] = sel.tolist()
        self.slack: list[int] = p.slack(sel).tolist()
        self.ptr: list[int] = p.eff_ptr.tolist()
        self.eacc: list[int] = p.eff_acc.tolist()
        self.edel: list[int] = p.eff_delta.tolist()
        self.value: list[int] = p.value.tolist()
        # groups = runs of equal (lane, level)
        n_e = len(lanes.item)
        gstart = np.ones(n_e, dtype=bool)
        if n_e:
            gstart[1:] = (lanes.lane[1:] != lanes.lane[:-1]) | (lanes.level[1:] != lanes.level[:-1])
        entry_group = np.cumsum(gstart) - 1
        starts = np.flatnonzero(gstart)
        self.g_start: list[int] = starts.tolist()
        self.g_end: list[int] = np.append(starts[1:], n_e).tolist()
        g_lane = lanes.lane[starts]
        self.g_lane: list[int] = g_lane.tolist()
        n_lanes = len(lanes.lane_ptr) - 1
        lane_gfirst = np.searchsorted(g_lane, np.arange(n_lanes + 1))
        self.lane_g0: list[int] = lane_gfirst[:-1].tolist()
        self.lane_g1: list[int] = lane_gfirst[1:].tolist()  # exclusive
        self.lane_acc: list[int] = lanes.acc[lanes.lane_ptr[:-1]].tolist() if n_lanes else []
        self.e_item: list[int] = lanes.item.tolist()
        self.e_size: list[int] = lanes.size.tolist()
        # lanes where an account is the debtor
        order = np.argsort(np.asarray(self.lane_acc, dtype=np.int64), kind="stable")
        la_sorted = np.asarray(self.lane_acc, dtype=np.int64)[order]
        bounds = np.searchsorted(la_sorted, np.arange(p.n_accounts + 1))
        self.acc_lanes_ptr: list[int] = bounds.tolist()
        self.acc_lanes: list[int] = order.tolist()
        # entries of each item: (group, size)
        e_order = np.argsort(lanes.item, kind="stable")
        self.item_eptr: list[int] = np.searchsorted(lanes.item[e_order], np.arange(p.n + 1)).tolist()
        self.item_entries: list[int] = e_order.tolist()
        self.e_group: list[int] = entry_group.tolist()
        gsize = np.diff(np.append(starts, n_e))
        nsel = np.bincount(entry_group, weights=sel[lanes.item].astype(np.float64), minlength=len(starts))
        self.g_nsel: list[int] = nsel.astype(np.int64).tolist()
        self.g_size: list[int] = gsize.tolist()
        # lazily built sorted lists of (size, item) per group: selected / unselected members
        self._sl: dict[int, list[tuple[int, int]]] = {}
        self._ul: dict[int, list[tuple[int, int]]] = {}
        self.front: list[int] = []
        self.top: list[int] = []
        for ln in range(n_lanes):
            g0, g1 = self.lane_g0[ln], self.lane_g1[ln]
            f = g0
            while f < g1 and self.g_nsel[f] == self.g_size[f]:
                f += 1
            t = g1 - 1
            while t >= g0 and self.g_nsel[t] == 0:
                t -= 1
            self.front.append(f)
            self.top.append(t)
        self.moves = 0

    # --- group lists -------------------------------------------------------------------------
    def _lists(self, g: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        known = self._sl.get(g)
        if known is not None:
            return known, self._ul[g]
        sl: list[tuple[int, int]] = []
        ul: list[tuple[int, int]] = []
        for e in range(self.g_start[g], self.g_end[g]):  # already sorted by (size, item)
            it = self.e_item[e]
            (sl if self.sel[it] else ul).append((self.e_size[e], it))
        self._sl[g] = sl
        self._ul[g] = ul
        return sl, ul

    def _entries(self, i: int) -> list[int]:
        return self.item_entries[self.item_eptr[i]: self.item_eptr[i + 1]]

    # --- primitive moves ---------------------------------------------------------------------
    def fits(self, i: int) -> bool:
        slack, eacc, edel = self.slack, self.eacc, self.edel
        for e in range(self.ptr[i], self.ptr[i + 1]):
            d = edel[e]
            if d < 0 and slack[eacc[e]] + d < 0:
                return False
        return True

    def addable(self, i: int) -> bool:
        for e in self._entries(i):
            g = self.e_group[e]
            if self.front[self.g_lane[g]] != g:
                return False
        return True

    def _set(self, i: int, on: bool) -> None:
        self.moves += 1
        self.sel[i] = on
        sign = 1 if on else -1
        slack, eacc, edel = self.slack, self.eacc, self.edel
        for e in range(self.ptr[i], self.ptr[i + 1]):
            slack[eacc[e]] += sign * edel[e]
        for e in self._entries(i):
            g = self.e_group[e]
            ln = self.g_lane[g]
            key = (self.e_size[e], i)
            if g in self._sl:
                src, dst = (self._ul[g], self._sl[g]) if on else (self._sl[g], self._ul[g])
                k = bisect_left(src, key)
                del src[k]
                insort(dst, key)
            if on:
                self.g_nsel[g] += 1
                if g > self.top[ln]:
                    self.top[ln] = g
                f = self.front[ln]
                g1 = self.lane_g1[ln]
                while f < g1 and self.g_nsel[f] == self.g_size[f]:
                    f += 1
                self.front[ln] = f
            else:
                self.g_nsel[g] -= 1
                if g < self.front[ln]:
                    self.front[ln] = g
                t = self.top[ln]
                g0 = self.lane_g0[ln]
                while t >= g0 and self.g_nsel[t] == 0:
                    t -= 1
                self.top[ln] = t

    def add(self, i: int) -> None:
        self._set(i, True)

    def remove(self, i: int) -> list[int]:
        """Unselect i and everything queued behind it in its lanes; returns all removed items."""
        removed: list[int] = []
        stack = [i]
        while stack:
            j = stack.pop()
            if not self.sel[j]:
                continue
            self._set(j, False)
            removed.append(j)
            for e in self._entries(j):
                g = self.e_group[e]
                ln = self.g_lane[g]
                if self.top[ln] > g:
                    for gg in range(g + 1, self.top[ln] + 1):
                        sl, _ = self._lists(gg)
                        stack.extend(it for _, it in sl)
        return removed

    def close(self) -> None:
        """Make the selection structurally valid by removing what sits above a gap in a lane."""
        for ln in range(len(self.front)):
            while self.top[ln] > self.front[ln]:
                sl, _ = self._lists(self.top[ln])
                for _, it in list(sl):
                    self.remove(it)

    # --- repair: remove until every slack >= 0 -----------------------------------------------
    def repair(self, rule: str = "fit", deadline: Deadline | None = None) -> int:
        """Remove items until feasible. rule "fit": at the account with the largest shortfall, drop
        the smallest top-of-queue debit that covers the shortfall, else the largest one (least value
        lost per unit of shortfall); rule "last": drop the last-queued one (T2 partial)."""
        slack = self.slack
        heap = [(s, k) for k, s in enumerate(slack) if s < 0]
        heapq.heapify(heap)
        steps = 0
        while heap:
            s, k = heapq.heappop(heap)
            cur = slack[k]
            if cur >= 0:
                continue
            if cur != s:
                continue  # stale: every change of a negative slack pushed its new value too
            steps += 1
            short = -cur
            best: tuple[int, int, int] | None = None  # smallest key wins
            best_item = -1
            for li in range(self.acc_lanes_ptr[k], self.acc_lanes_ptr[k + 1]):
                ln = self.acc_lanes[li]
                t = self.top[ln]
                if t < self.lane_g0[ln]:
                    continue
                sl, _ = self._lists(t)
                if rule == "last":
                    # lanes in "queue" mode hold one item per group: the top one is the last queued
                    it = sl[-1][1]
                    cand = (-int(self.p.priority[it]), -int(self.p.order[it]), -it)
                else:
                    cand, it = self._choose(sl, short, -1)
                if best is None or cand < best:
                    best = cand
                    best_item = it
            if best is None:
                # nothing left to remove at k: only possible when k's deficit came from credits
                # withdrawn elsewhere, which remove() never leaves behind; stop rather than loop
                raise AssertionError(f"account {k} short by {short} with nothing selected to remove")
            for j in self.remove(best_item):
                for e in range(self.ptr[j], self.ptr[j + 1]):
                    a = self.eacc[e]
                    if slack[a] < 0:
                        heapq.heappush(heap, (slack[a], a))
            if slack[k] < 0:
                heapq.heappush(heap, (slack[k], k))
            if deadline is not None and steps % 4096 == 0 and deadline.passed():
                # still must end feasible: finish with the cheap rule, no more time checks
                deadline = None
        return steps

    def _choose(self, sl: list[tuple[int, int]], short: int, forbid: int) -> tuple[tuple[int, int, int], int]:
        """Which settled debit to drop to cover `short`: among the few smallest that cover it, the
        one losing least value counting the shortfall it pushes onto its creditor; if none covers,
        the largest few by the same measure per unit freed."""
        cred, simple, value, slack = self.p.cred, self.p.simple, self.value, self.slack
        j = bisect_left(sl, (short, -1))
        best: tuple[int, int, int] = (2, 0, 0)
        best_it = -1
        for a_i, i in sl[j: j + 8]:
            if i == forbid:
                continue
            push = max(0, a_i - slack[int(cred[i])]) if simple[i] else 0
            cand = (0, value[i] + push, i)
            if cand < best:
                best, best_it = cand, i
        if best_it >= 0:
            return best, best_it
        for a_i, i in sl[max(0, j - 8): j][::-1]:
            if i == forbid:
                continue
            push = max(0, a_i - slack[int(cred[i])]) if simple[i] else 0
            # cost per unit freed, scaled to stay an integer key
            cand = (1, ((value[i] + push) << 20) // max(a_i, 1), i)
            if cand < best:
                best, best_it = cand, i
        if best_it < 0:  # only the forbidden item is left
            return (3, 0, 0), -1
        return best, best_it

    def try_insert(self, j: int, removals_max: int = 12) -> int:
        """Settle j even though it does not fit, then drop the cheapest debits until feasible
        again; keep the result only if the value went up. Lane mode "none" only (no cascades).
        Returns the gain (0 when reverted)."""
        slack = self.slack
        value = self.value
        self._set(j, True)
        log: list[int] = []
        lost = 0
        heap = [(slack[self.eacc[e]], self.eacc[e]) for e in range(self.ptr[j], self.ptr[j + 1])
                if slack[self.eacc[e]] < 0]
        heapq.heapify(heap)
        ok = True
        while heap:
            s, k = heapq.heappop(heap)
            if slack[k] >= 0 or slack[k] != s:
                continue
            best_item = -1
            best: tuple[int, int, int] | None = None
            for li in range(self.acc_lanes_ptr[k], self.acc_lanes_ptr[k + 1]):
                ln = self.acc_lanes[li]
                t = self.top[ln]
                if t < self.lane_g0[ln]:
                    continue
                sl, _ = self._lists(t)
                cand, it = self._choose(sl, -slack[k], j)
                if it >= 0 and (best is None or cand < best):
                    best, best_item = cand, it
            if best_item < 0:
                ok = False
                break
            self._set(best_item, False)
            log.append(best_item)
            lost += value[best_item]
            if lost >= value[j] or len(log) > removals_max:
                ok = False
                break
            for e in range(self.ptr[best_item], self.ptr[best_item + 1]):
                a = self.eacc[e]
                if slack[a] < 0:
                    heapq.heappush(heap, (slack[a], a))
            if slack[k] < 0:
                heapq.heappush(heap, (slack[k], k))
        if ok:
            return value[j] - lost
        for i in reversed(log):
            self._set(i, True)
        self._set(j, False)
        return 0

    def insert_pass(self, deadline: Deadline | None, candidates: list[int]) -> int:
        gained = 0
        for n_try, j in enumerate(candidates):
            if not self.sel[j] and self.fits(j):
                self.add(j)
                gained += self.value[j]
            elif not self.sel[j]:
                gained += self.try_insert(j)
            if deadline is not None and n_try % 256 == 0 and deadline.passed():
                break
        return gained

    # --- greedy addition ---------------------------------------------------------------------
    def add_pass(self, deadline: Deadline | None = None, lanes_todo: list[int] | None = None) -> int:
        """Settle whatever fits, largest debit first inside each lane's front group, re-examining
        a lane whenever its account receives funds (RTGS recirculation)."""
        added = 0
        n_lanes = len(self.front)
        todo = list(range(n_lanes)) if lanes_todo is None else lanes_todo
        queued = [False] * n_lanes
        for ln in todo:
            queued[ln] = True
        qi = 0
        slack = self.slack
        while qi < len(todo):
            ln = todo[qi]
            qi += 1
            queued[ln] = False
            k = self.lane_acc[ln]
            while True:
                f = self.front[ln]
                if f >= self.lane_g1[ln]:
                    break
                _, ul = self._lists(f)
                pos = bisect_right(ul, (slack[k], 1 << 62)) - 1
                chosen = -1
                scanned = 0
                while pos >= 0 and scanned < _SCAN_MAX:
                    it = ul[pos][1]
                    if self.addable(it) and self.fits(it):
                        chosen = it
                        break
                    pos -= 1
                    scanned += 1
                if chosen < 0:
                    break
                self.add(chosen)
                added += 1
                for e in range(self.ptr[chosen], self.ptr[chosen + 1]):
                    if self.edel[e] > 0:
                        a = self.eacc[e]
                        for li in range(self.acc_lanes_ptr[a], self.acc_lanes_ptr[a + 1]):
                            l2 = self.acc_lanes[li]
                            if not queued[l2]:
                                queued[l2] = True
                                todo.append(l2)
                if deadline is not None and added % 4096 == 0 and deadline.passed():
                    return added
        return added

    # --- 1-for-1 exchange --------------------------------------------------------------------
    def swap_pass(self, deadline: Deadline | None = None) -> tuple[int, list[int]]:
        """In a partly settled group, trade a settled debit i for a larger unsettled j of the same
        debtor when the debtor can afford the difference and i's creditor can lose i.
        Simple payments only. Returns (swaps, lanes whose accounts received funds)."""
        p = self.p
        simple = p.simple
        cred = p.cred
        swaps = 0
        touched: list[int] = []
        slack = self.slack
        for ln in range(len(self.front)):
            g = self.front[ln]
            if g >= self.lane_g1[ln] or self.top[ln] != g or self.g_nsel[g] == 0:
                continue
            k = self.lane_acc[ln]
            sl, ul = self._lists(g)
            # largest unsettled first; stop once nothing smaller is settled to trade against
            for a_j, j in ul[::-1]:
                if not sl or a_j <= sl[0][0]:
                    break
                if self.sel[j] or not simple[j]:
                    continue
                need = a_j - slack[k]
                if need <= 0:
                    if self.addable(j) and self.fits(j):
                        self.add(j)
                        swaps += 1
                    continue
                pos = bisect_left(sl, (need, -1))
                cj = int(cred[j])
                for a_i, i in sl[pos: pos + _SCAN_MAX]:
                    if a_i >= a_j:
                        break
                    if not simple[i] or self.value[i] >= self.value[j]:
                        continue
                    ci = int(cred[i])
                    if slack[ci] - a_i + (a_j if ci == cj else 0) < 0:
                        continue
                    self._set(i, False)
                    self._set(j, True)
                    swaps += 1
                    for li in range(self.acc_lanes_ptr[cj], self.acc_lanes_ptr[cj + 1]):
                        touched.append(self.acc_lanes[li])
                    break
            if deadline is not None and deadline.passed():
                break
        return swaps, touched

    # --- results -----------------------------------------------------------------------------
    def selected(self) -> BoolArray:
        return np.array(self.sel, dtype=bool)

    def feasible(self) -> bool:
        return min(self.slack, default=0) >= 0
