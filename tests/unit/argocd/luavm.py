"""A Lua VM like Argo CD's, for running resource customizations in tests.

Argo CD runs health and action scripts in gopher-lua (Lua 5.1) with only the base, package and
table libraries and a "safe" os library (``os.time``, ``os.date``); scripts configured in
``argocd-cm`` get no string library (``useOpenLibs`` defaults to false). The resource is the
global ``obj`` (JSON numbers become Lua numbers, arrays 1-based tables) and the script's return
value is encoded back to JSON, where an empty table becomes ``[]`` unless the input had an object
there (Argo CD's ``cleanReturnedObj``). This module reproduces that with a real Lua 5.1 (lupa).
"""

from __future__ import annotations

from typing import Any

from lupa import lua51

_SANDBOX = """
local safe_os = {time = os.time, date = os.date}
local env = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
  print = print, rawequal = rawequal, rawget = rawget, rawset = rawset, select = select,
  tonumber = tonumber, tostring = tostring, type = type, unpack = unpack, xpcall = xpcall,
  table = table, os = safe_os,
}
getmetatable("").__index = {}  -- no string library, not even as methods
return function(source, name, obj)
  env.obj = obj
  local chunk, err = loadstring(source, name)
  if chunk == nil then error(err) end
  setfenv(chunk, env)
  return chunk()
end
"""


class LuaVM:
    """One sandboxed Lua 5.1 state per script run, as Argo CD does."""

    def __init__(self) -> None:
        self._lua = lua51.LuaRuntime(unpack_returned_tuples=False)
        self._run = self._lua.execute(_SANDBOX)

    def _to_lua(self, value: Any) -> Any:
        if isinstance(value, dict):
            return self._lua.table_from({k: self._to_lua(v) for k, v in value.items()})
        if isinstance(value, list):
            return self._lua.table_from([self._to_lua(v) for v in value])
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float):
            return float(value)  # gopher-lua numbers are float64
        raise TypeError(f"cannot pass {type(value).__name__} to Lua")

    def run(self, source: str, obj: dict[str, Any], name: str = "script") -> Any:
        result = self._run(source, name, self._to_lua(obj))
        return from_lua(result, obj)


def from_lua(value: Any, original: Any = None) -> Any:
    """Lua → JSON-like Python, with Argo CD's empty-table rule."""
    if lua51.lua_type(value) != "table":
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    keys = list(value.keys())
    if not keys:
        return {} if isinstance(original, dict) else []
    if all(isinstance(k, int | float) for k in keys) and sorted(keys) == list(
        range(1, len(keys) + 1)
    ):
        olist = original if isinstance(original, list) else []
        return [
            from_lua(value[i], olist[i - 1] if i - 1 < len(olist) else None)
            for i in range(1, len(keys) + 1)
        ]
    odict = original if isinstance(original, dict) else {}
    return {str(k): from_lua(value[k], odict.get(str(k))) for k in keys}
