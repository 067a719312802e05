-- Test-only Prosody plugin: static S2S routes, no DNS.
--
-- Wraps net.resolvers.service.new so that an outgoing S2S connection to a domain listed in the
-- global option `test_static_s2s_routes = { ["b.test"] = { ip = "127.0.0.3", port = 5270 } }`
-- goes straight to that address. Direct TLS (xmpps-server) is offered only when the route has
-- `tls_port`. Any other domain resolves to nothing, so Prosody never asks a name server: the
-- harness must keep every peer off the system resolver (/etc/resolv.conf points off-machine).
module:set_global();

local service = require "net.resolvers.service";
local basic = require "net.resolvers.basic";

local routes = module:get_option("test_static_s2s_routes", {});

-- A resolver with no targets: mod_s2s then reports the domain unreachable.
local empty_mt = { __index = { next = function(self, cb) cb(nil); end } };
local function empty(reason)
	return setmetatable({ last_error = reason }, empty_mt);
end

local original_new = service.new;

service.new = function(hostname, srv_name, conn_type, extra)
	local route = routes[hostname];
	if not route then
		module:log("warn", "no static route for %s (%s): not resolving", tostring(hostname), tostring(srv_name));
		return empty("no static test route");
	end
	if srv_name == "xmpps-server" then
		if not route.tls_port then
			return empty("no direct TLS test route");
		end
		module:log("debug", "static route %s (%s) -> %s:%d", hostname, srv_name, route.ip, route.tls_port);
		return basic.new(route.ip, route.tls_port, conn_type, extra);
	end
	module:log("debug", "static route %s (%s) -> %s:%d", hostname, srv_name, route.ip, route.port);
	return basic.new(route.ip, route.port, conn_type, extra);
end

function module.unload()
	service.new = original_new;
end
