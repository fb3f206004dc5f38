-- Actions offered on a modelfleet.dev/ModelRelease, enabled by its phase.
-- promote / abort / retry become one-shot annotations the operator consumes idempotently;
-- pause / resume set spec.paused (a live override: Git stays the source of truth).
actions = {}
local phase = nil
if obj.status ~= nil then
  phase = obj.status.phase
end
local paused = obj.spec ~= nil and obj.spec.paused == true
local rolling = phase == "Progressing" or phase == "Paused"
local active = rolling or phase == "Pending" or phase == "Verifying"
local failed = phase == "Aborted" or phase == "Rejected"

actions["promote"] = {["disabled"] = not rolling, ["iconClass"] = "fa fa-fw fa-forward", ["displayName"] = "Promote to the next step"}
actions["abort"] = {["disabled"] = not active, ["iconClass"] = "fa fa-fw fa-stop", ["displayName"] = "Abort the rollout"}
actions["retry"] = {["disabled"] = not failed, ["iconClass"] = "fa fa-fw fa-redo", ["displayName"] = "Retry the release"}
actions["pause"] = {["disabled"] = paused or not active, ["iconClass"] = "fa fa-fw fa-pause", ["displayName"] = "Pause the rollout"}
actions["resume"] = {["disabled"] = not paused, ["iconClass"] = "fa fa-fw fa-play", ["displayName"] = "Resume the rollout"}
return actions
