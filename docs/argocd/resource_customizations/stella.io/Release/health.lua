-- Argo CD health of a Stella Release (stella.io/v1alpha1). Reads only what the operator
-- writes: status.observedGeneration and the Ready and Degraded conditions.
--   Degraded     Degraded=True: Failed, Rejected, Blocked or halted in some environment
--   Healthy      Ready=True: Deployed in every environment it targets (or superseded)
--   Suspended    waiting for a person or a window: approvals, a freeze, a manual
--                promotion, a suspended environment
--   Progressing  anything else: not evaluated yet, deploying, verifying, waiting for the
--                previous environment
local hs = {}
local waiting = {
  ApprovalsMissing = true,
  FreezeWindowActive = true,
  InvalidFreezeWindow = true,
  AwaitingPromotion = true,
  EnvironmentSuspended = true,
}
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Stella operator to evaluate this release"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Stella operator to observe generation " .. generation
  return hs
end
local ready = nil
local degraded = nil
for _, c in ipairs(status.conditions) do
  if c.type == "Ready" then ready = c end
  if c.type == "Degraded" then degraded = c end
end
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = degraded.message
  return hs
end
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end
if ready.status == "True" or ready.reason == "SupersededByNewerRelease" then
  hs.status = "Healthy"
elseif waiting[ready.reason] then
  hs.status = "Suspended"
else
  hs.status = "Progressing"
end
hs.message = ready.message
return hs
