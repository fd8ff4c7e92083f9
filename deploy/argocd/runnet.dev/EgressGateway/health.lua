-- Argo CD health check for runnet.dev objects (EgressGateway, PSCExport, PSCEndpoint,
-- ProjectBinding). runnet writes kstatus conditions: Ready (always, after its first pass),
-- Reconciling and Stalled (each present only while True), status.observedGeneration.
-- Runs in Argo CD's sandbox for users' scripts: no string or math library.
local STALLED_REASONS = {
  InvalidSpec = true,
  Conflict = true,
  PermissionDenied = true,
  ProjectNotBound = true,
  ConnectionRejected = true,
}

local function findCondition(conditions, conditionType)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == conditionType then
      return condition
    end
  end
  return nil
end

local function isTrue(condition)
  return condition ~= nil and condition.status == "True"
end

local function messageOf(condition)
  if condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  if condition.reason ~= nil and condition.reason ~= "" then
    return condition.reason
  end
  return condition.type .. " is " .. tostring(condition.status)
end

local hs = {}
local metadata = obj.metadata or {}
local status = obj.status
local conditions = nil
if status ~= nil then
  conditions = status.conditions
end
local ready = findCondition(conditions, "Ready")

if metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "being deleted"
  if ready ~= nil and ready.reason == "Deleting" and ready.message ~= nil and ready.message ~= "" then
    hs.message = "being deleted: " .. ready.message
  end
  return hs
end

local generation = metadata.generation
if status == nil or status.observedGeneration == nil or (generation ~= nil and status.observedGeneration ~= generation) then
  hs.status = "Progressing"
  if generation ~= nil then
    hs.message = "waiting for runnet to observe generation " .. tostring(generation)
  else
    hs.message = "waiting for runnet to observe this object"
  end
  return hs
end

local stalled = findCondition(conditions, "Stalled")
if isTrue(stalled) then
  hs.status = "Degraded"
  hs.message = messageOf(stalled)
  return hs
end

if isTrue(ready) then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end

local reconciling = findCondition(conditions, "Reconciling")
if isTrue(reconciling) then
  hs.status = "Progressing"
  hs.message = messageOf(reconciling)
  return hs
end

if ready ~= nil then
  if ready.status == "False" and STALLED_REASONS[ready.reason] then
    hs.status = "Degraded"
  else
    hs.status = "Progressing"
  end
  hs.message = messageOf(ready)
  return hs
end

hs.status = "Progressing"
hs.message = "waiting for runnet to report Ready"
return hs
