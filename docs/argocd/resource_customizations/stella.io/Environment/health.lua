-- Argo CD health of a Stella Environment (stella.io/v1alpha1). Reads only what the
-- operator writes: status.observedGeneration, the Ready and Degraded conditions and
-- status.inFlight.
--   Degraded     Degraded=True: halted (e.g. a digest mismatch) or a broken promotion path
--   Suspended    suspended (spec.suspended, or stella env suspend)
--   Progressing  not evaluated yet, or a release is deploying here now
--   Healthy      Ready=True and nothing deploying
local hs = {}
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Stella operator to evaluate this environment"
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
if ready.status ~= "True" and ready.reason == "Suspended" then
  hs.status = "Suspended"
  hs.message = ready.message
  return hs
end
if status.inFlight ~= nil then
  hs.status = "Progressing"
  hs.message = "Deploying " .. status.inFlight
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  if status.currentRelease ~= nil then
    hs.message = "Running " .. status.currentRelease
  else
    hs.message = ready.message
  end
  return hs
end
hs.status = "Progressing"
hs.message = ready.message
return hs
