-- Burn: a new value of the ots.dev/burn annotation makes the ots-operator burn the live link on
-- the server at once, without deleting the resource; the share then stays Burned (no new link,
-- no onExpiry renewal) until a reissue. status.burnToken then shows the value. The value is the
-- current UTC time to the second (20 characters; the operator acts on values of at most 63).
local os = require("os")
if type(obj.metadata) ~= "table" then
  obj.metadata = {}
end
if type(obj.metadata.annotations) ~= "table" then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["ots.dev/burn"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
