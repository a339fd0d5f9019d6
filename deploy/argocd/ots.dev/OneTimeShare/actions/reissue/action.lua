-- Reissue: a new value of the ots.dev/reshare annotation makes the ots-operator burn the live
-- link (if unread) and share the same spec anew; status.reshareToken then shows the value.
-- The value is the current UTC time to the second (20 characters; the operator acts on values
-- of at most 63), as `kubectl ots reissue` sets it.
local os = require("os")
if type(obj.metadata) ~= "table" then
  obj.metadata = {}
end
if type(obj.metadata.annotations) ~= "table" then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["ots.dev/reshare"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
