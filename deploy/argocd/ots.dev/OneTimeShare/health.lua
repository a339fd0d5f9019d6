-- Argo CD health of a OneTimeShare (ots.dev/v1alpha1), from the status the ots-operator writes.
--   Progressing  no status yet, Pending, a reissue (ots.dev/reshare) or a burn (ots.dev/burn)
--                not yet carried out, the operator not yet caught up with the spec, or a retry
--                after a transient failure
--   Healthy      Shared (the link is live) or Received (the recipient opened it)
--   Degraded     Failed (fix the spec or the Secrets), Expired unread (reissue to share again),
--                a reissue or burn the operator refuses, or a share stuck on an error it
--                cannot fix alone
--   Suspended    Burned before anyone opened it (someone chose to stop the hand-off: the holder
--                of the receipt, or the burn action / ots.dev/burn annotation)
--   Unknown      a phase this script does not know (a newer operator?)
-- The message is the Ready condition's (the operator's words; never a secret or a link).
-- It never fails on a missing or odd status: every field is checked before it is used. It uses
-- only what Argo CD opens for custom scripts (the base and table libraries; no string library).
-- See deploy/argocd/README.md.
local hs = {}

local RESHARE = "ots.dev/reshare"
local BURN = "ots.dev/burn"

local function field(tbl, key)
  if type(tbl) ~= "table" then
    return nil
  end
  return tbl[key]
end

local function text(value)
  if type(value) == "string" and value ~= "" then
    return value
  end
  return nil
end

-- The condition of a type, if status has a list of conditions with one.
local function condition(status, kind)
  local conditions = field(status, "conditions")
  if type(conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(conditions) do
    if type(c) == "table" and c.type == kind then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return type(c) == "table" and c.status == "True"
end

local function result(status, message)
  hs.status = status
  hs.message = message
  return hs
end

local status = field(obj, "status")
local phase = field(status, "phase")
if type(status) ~= "table" or phase == nil then
  return result("Progressing", "Waiting for the ots-operator to share the Secret")
end
if type(phase) ~= "string" then
  return result("Unknown", "status.phase is not a word")
end

local known = {Pending = true, Shared = true, Received = true, Burned = true, Expired = true, Failed = true}
if not known[phase] then
  return result("Unknown", "Unknown phase " .. phase)
end

local ready = condition(status, "Ready")
if ready == nil then
  -- The ots-operator writes Ready with every phase: this status is not (yet) its word.
  return result("Progressing", "status has no Ready condition: waiting for the ots-operator")
end
local message = text(ready.message)
local reconciling = condition(status, "Reconciling")
local stalled = condition(status, "Stalled")

-- A status written for an older spec says little about this one.
local generation = field(field(obj, "metadata"), "generation")
local observed = field(status, "observedGeneration")
if type(generation) == "number" and type(observed) == "number" and observed < generation then
  return result("Progressing", "The ots-operator has not yet acted on the latest spec")
end

-- A reissue asked for with the ots.dev/reshare annotation and not carried out yet. Ready still
-- describes the old link; Reconciling or Stalled (or a refusal in Ready) say how the new one fares.
local has_link = phase ~= "Pending" and phase ~= "Failed"
local wanted = text(field(field(field(obj, "metadata"), "annotations"), RESHARE))
if has_link and wanted ~= nil and wanted ~= field(status, "reshareToken") then
  if is_true(stalled) then
    return result("Degraded", text(stalled.message) or message or "The reissue cannot be carried out")
  end
  -- Refused (a value over 63 characters, or too many reissues this hour): the message says why.
  if ready.reason == "ReissueRefused" then
    return result("Degraded", message or "The reissue asked for by " .. RESHARE .. " is refused")
  end
  local under_way = (is_true(reconciling) and text(reconciling.message)) or nil
  return result("Progressing", under_way or "Reissue requested: the ots-operator shares the Secret anew")
end

-- A burn asked for with the ots.dev/burn annotation and not carried out yet: the link is live
-- until the operator has burned it, or stays live when the value is refused (Stalled says why).
local burn = text(field(field(field(obj, "metadata"), "annotations"), BURN))
if phase == "Shared" and burn ~= nil and burn ~= field(status, "burnToken") then
  if is_true(stalled) then
    return result("Degraded", text(stalled.message) or "The burn asked for by " .. BURN .. " is refused")
  end
  -- Retried (the server down, say): Reconciling says why.
  local retried = (is_true(reconciling) and text(reconciling.message)) or nil
  return result("Progressing", retried or "Burn requested: the ots-operator burns the link")
end

if phase == "Pending" then
  return result("Progressing", message or "Waiting to share the Secret")
end
if phase == "Failed" then
  return result("Degraded", message or "Sharing failed")
end
if phase == "Burned" then
  return result("Suspended", message or "The secret was burned before anyone opened the link")
end
if phase == "Expired" then
  -- onExpiry: Reshare is making the next link.
  if is_true(reconciling) then
    return result("Progressing", message or "The link expired; a new one is being shared")
  end
  return result("Degraded", message or "The link expired before anyone opened it")
end
-- Shared or Received.
if is_true(ready) then
  return result("Healthy", message or "The link is ready to hand out")
end
-- The link stands, but the operator reports a problem: waiting for a fix, or retrying.
if is_true(stalled) then
  return result("Degraded", message or "The ots-operator cannot follow the link")
end
return result("Progressing", message or "The ots-operator is retrying")
