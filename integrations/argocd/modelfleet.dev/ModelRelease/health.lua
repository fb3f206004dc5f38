-- Argo CD health of a modelfleet.dev/ModelRelease.
-- Runs in Argo CD's Lua VM as an argocd-cm script: base functions and table only (no string
-- library, no global os). Never raises an error: anything it does not understand is Unknown.
-- Order: the operator must have observed the current spec before its status means anything;
-- a stop that needs a human (Aborted, Rejected, Blocked on the release checklist, Stalled,
-- Conflict, a revoked stable) is Degraded
-- whatever the phase; a hold is Suspended only where a human is needed (spec.paused, an
-- Inconclusive gate); waiting for evidence is Progressing.
local hs = {}

-- status.phase values of the ModelRelease CRD (crds/modelrelease.yaml).
local PHASES = {
  Pending = true, Verifying = true, Blocked = true, Progressing = true, Paused = true,
  Succeeded = true, Rejected = true, Aborted = true,
}
-- Conditions that, when True, mean nothing more happens without a human (most specific first),
-- and the Ready=False reasons that mean the same.
local HUMAN_CONDITIONS = {"Conflict", "StableRevoked", "Revoked", "Stalled"}
local HUMAN_READY_REASONS = {Conflict = true, Stalled = true, StableRevoked = true, Revoked = true}

local function field(t, key)
  if type(t) == "table" then
    return t[key]
  end
  return nil
end

local spec = field(obj, "spec")
local status = field(obj, "status")

local function version_of(block)
  local v = field(block, "version")
  if v ~= nil then
    return tostring(v)
  end
  return nil
end

local function rollout_step()
  local r = field(status, "rollout")
  if field(r, "stepName") == nil then
    return ""
  end
  local text = " at step " .. tostring(r.stepName)
  if type(r.step) == "number" then
    text = text .. " (" .. tostring(r.step + 1)
    local steps = field(field(spec, "rollout"), "steps")
    if type(steps) == "table" then
      text = text .. "/" .. tostring(#steps)
    end
    text = text .. ")"
  end
  return text
end

local function condition(kind)
  local conditions = field(status, "conditions")
  if type(conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(conditions) do
    if field(c, "type") == kind then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  local why = field(c, "reason") or fallback
  local text = field(c, "message")
  if text == nil then
    return tostring(why)
  end
  return tostring(why) .. ": " .. tostring(text)
end

-- The condition that says a human must act, or nil. A Succeeded release that is not Ready
-- (whatever the reason) needs one too. An Inconclusive hold is Suspended, not Degraded.
local function needs_a_human(phase)
  local ready = condition("Ready")
  if field(ready, "status") == "False" then
    if HUMAN_READY_REASONS[field(ready, "reason")] or phase == "Succeeded" then
      return ready
    end
  end
  for _, kind in ipairs(HUMAN_CONDITIONS) do
    local c = condition(kind)
    if field(c, "status") == "True" and field(c, "reason") ~= "Inconclusive" then
      return c
    end
  end
  return nil
end

if type(status) ~= "table" then
  hs.status = "Progressing"
  hs.message = "Waiting for the modelfleet operator to observe the release"
  return hs
end

local generation = field(field(obj, "metadata"), "generation")
local observed = status.observedGeneration
if type(generation) == "number" and (type(observed) ~= "number" or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for spec update to be observed"
  return hs
end

local phase = status.phase
if phase ~= nil and not PHASES[phase] then
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
    .. " (known: Pending, Verifying, Blocked, Progressing, Paused, Succeeded, Rejected, Aborted)"
  return hs
end

local target = version_of(status.target) or version_of(spec) or "the release"
local stable = version_of(status.stable)

if phase == "Aborted" or phase == "Rejected" then
  hs.status = "Degraded"
  local why = status.message or status.reason or phase
  hs.message = phase .. ": " .. tostring(why) .. "; gateways stay on " .. (stable or "their current version")
  return hs
end

-- The release checklist items that keep the target from going live, each with its reason.
local function unmet_items()
  local unmet = field(field(status, "checklist"), "unmet")
  if type(unmet) ~= "table" then
    return nil
  end
  local text = nil
  for _, u in ipairs(unmet) do
    local item = tostring(field(u, "item") or "?")
    local why = field(u, "reason")
    if why ~= nil then
      item = item .. " (" .. tostring(why) .. ")"
    end
    if text == nil then
      text = item
    else
      text = text .. "; " .. item
    end
  end
  return text
end

if phase == "Blocked" then
  hs.status = "Degraded"
  local items = unmet_items() or status.message or "release checklist unmet"
  hs.message = "Blocked: " .. target .. " does not go live until the release checklist holds: "
    .. tostring(items) .. "; gateways stay on " .. (stable or "their current version")
  return hs
end

local human = needs_a_human(phase)
if human ~= nil then
  hs.status = "Degraded"
  hs.message = describe(human, human.type)
  return hs
end

if status.reason == "WaitingForReports" and (phase == "Progressing" or phase == "Paused") then
  hs.status = "Progressing"
  hs.message = "Rolling out " .. target .. rollout_step() .. ": " .. tostring(status.message or "waiting for the first health reports")
  return hs
end

if phase == "Paused" then
  hs.status = "Suspended"
  if field(spec, "paused") == true then
    hs.message = "Rollout of " .. target .. " paused by spec.paused" .. rollout_step()
  elseif status.message ~= nil then
    hs.message = "Rollout of " .. target .. " paused: " .. tostring(status.message)
  else
    hs.message = "Rollout of " .. target .. " paused" .. rollout_step()
  end
  return hs
end

if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = "Version " .. (stable or target) .. " runs on every selected gateway"
  return hs
end

if phase == "Progressing" then
  hs.status = "Progressing"
  hs.message = "Rolling out " .. target .. rollout_step()
  return hs
end

hs.status = "Progressing"
hs.message = "Verifying " .. target .. " against its TrustPolicy"
return hs
