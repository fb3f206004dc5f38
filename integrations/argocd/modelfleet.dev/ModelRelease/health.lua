-- Argo CD health of a modelfleet.dev/ModelRelease.
-- Runs in Argo CD's Lua sandbox (no string library): only base functions, table and os.time.
-- Order: the operator must have observed the current spec before its phase means anything.
local hs = {}

local function rollout_step(status)
  if status.rollout == nil then
    return ""
  end
  local r = status.rollout
  local text = ""
  if r.stepName ~= nil then
    text = " at step " .. r.stepName
    if r.step ~= nil then
      text = text .. " (" .. tostring(r.step + 1)
      if obj.spec.rollout ~= nil and obj.spec.rollout.steps ~= nil then
        text = text .. "/" .. tostring(#obj.spec.rollout.steps)
      end
      text = text .. ")"
    end
  end
  return text
end

local function version_of(block)
  if block ~= nil and block.version ~= nil then
    return tostring(block.version)
  end
  return nil
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the modelfleet operator to observe the release"
  return hs
end

local status = obj.status
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for spec update to be observed"
  return hs
end

local phase = status.phase
local target = version_of(status.target) or tostring(obj.spec.version)

if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = "Version " .. (version_of(status.stable) or target) .. " runs on every selected gateway"
  return hs
end

if phase == "Paused" then
  hs.status = "Suspended"
  if obj.spec.paused == true then
    hs.message = "Rollout of " .. target .. " paused by spec.paused" .. rollout_step(status)
  elseif status.message ~= nil then
    hs.message = "Rollout of " .. target .. " paused: " .. status.message
  else
    hs.message = "Rollout of " .. target .. " paused" .. rollout_step(status)
  end
  return hs
end

if phase == "Aborted" or phase == "Rejected" then
  hs.status = "Degraded"
  local why = status.message or status.reason or phase
  hs.message = phase .. ": " .. why .. "; gateways stay on " .. (version_of(status.stable) or "their current version")
  return hs
end

if phase == "Progressing" then
  hs.status = "Progressing"
  hs.message = "Rolling out " .. target .. rollout_step(status)
  return hs
end

if phase == "Pending" or phase == "Verifying" or phase == nil then
  hs.status = "Progressing"
  hs.message = "Verifying " .. target .. " against its TrustPolicy"
  return hs
end

hs.status = "Unknown"
hs.message = "Unknown phase " .. tostring(phase)
return hs
